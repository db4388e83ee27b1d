"""One optimizer step each from the seed network's initial weights and gradients, for
seed_net.safetensors (golden_seed_net.py documents the tensors): torch.optim.Adadelta and SGD
with the hyperparameters below, each with a fresh state, on copies of the parameters."""

import torch

from golden_common import bool_str, store_params


def optimizer_steps(out, net, names):
    """Stores adadelta.<p> and sgd.<p> into `out`; returns the metadata adadelta_*, sgd_*."""

    def opt_step(prefix, cls, **kw):
        ps = []
        for p in net.parameters():
            q = p.detach().clone().requires_grad_(True)
            q.grad = p.grad.detach().clone()
            ps.append(q)
        opt = cls(ps, **kw)
        opt.step()
        store_params(out, prefix, zip(names, ps))

    adadelta = {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0}
    sgd = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-4, "nesterov": False}
    opt_step("adadelta", torch.optim.Adadelta, foreach=False, **adadelta)
    opt_step("sgd", torch.optim.SGD, foreach=False, **sgd)

    meta = {}
    for k, v in adadelta.items():
        meta[f"adadelta_{k}"] = repr(v)
    for k, v in sgd.items():
        meta[f"sgd_{k}"] = bool_str(v) if isinstance(v, bool) else repr(v)
    return meta
