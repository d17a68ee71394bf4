"""Chapter 4 (DeiT): different but correct answers, each of which must keep full marks, and the ALTERNATIVES dict."""

import einops
import torch
import torch.nn.functional as F
from torch import nn

from bugs_04_deit import loss
from nbexec import Variant


def prefix_einops(patch_tokens, pos_embed, cls_token, dist_token):
    """Correct: both prefix tokens repeated with einops, the position embedding added in two parts."""
    b = patch_tokens.shape[0]
    prefix = einops.repeat(torch.cat([cls_token, dist_token], dim=1), "1 t d -> b t d", b=b)
    return torch.cat([prefix + pos_embed[:, :2], patch_tokens + pos_embed[:, 2:]], dim=1)


def vit_normal_init(ns):
    """Correct: nn.init.normal_ instead of the truncated normal, the tokens made in one loop."""
    base = ns["DistilledViT"]

    class Normal(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            D = self.pos_embed.shape[-1]
            for name, shape in (("cls_token", (1, 1, D)), ("dist_token", (1, 1, D)),
                                ("pos_embed", tuple(self.pos_embed.shape))):
                setattr(self, name, nn.Parameter(nn.init.normal_(torch.empty(shape), std=0.02)))

        def forward_features(self, x):
            x = self.patch_embed(x)
            B = x.shape[0]
            x = torch.cat((self.cls_token.expand(B, -1, -1), self.dist_token.expand(B, -1, -1), x), dim=1)
            x = x + self.pos_embed
            for block in self.blocks:
                x = block(x)
            return self.norm(x)

    return {"DistilledViT": Normal}


def make_loss_explicit_kl(solution_cls):
    class ExplicitKL(nn.Module):
        """Correct: the KL written out with batchmean / K, hard distillation with nll_loss."""

        def __init__(self, base_criterion, teacher, alpha=0.5, tau=1.0, kind="hard"):
            super().__init__()
            if kind not in {"none", "soft", "hard"}:
                raise ValueError(f"unknown kind {kind}")
            self.base_criterion, self.teacher = base_criterion, teacher
            self.alpha, self.tau, self.kind = alpha, tau, kind
            if teacher is not None:
                for p in teacher.parameters():
                    p.requires_grad = False
                teacher.train(False)

        def train(self, mode=True):
            out = super().train(mode)
            if self.teacher is not None:
                self.teacher.train(False)
            return out

        def forward(self, inputs, outputs, labels):
            if isinstance(outputs, (tuple, list)):
                cls_logits, dist_logits = outputs
            else:
                cls_logits, dist_logits = outputs, None
            loss = self.base_criterion(cls_logits, labels)
            if self.kind == "none":
                return loss
            self.teacher.eval()
            with torch.no_grad():
                t = self.teacher(inputs)
            if self.kind == "soft":
                T = self.tau
                log_p_s, log_p_t = F.log_softmax(dist_logits / T, dim=-1), F.log_softmax(t / T, dim=-1)
                kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()  # batchmean
                distill = kl * T * T / dist_logits.shape[1]
            else:
                distill = F.nll_loss(F.log_softmax(dist_logits, dim=-1), t.argmax(dim=-1))
            return (1 - self.alpha) * loss + self.alpha * distill

    return ExplicitKL


def predict_stacked(model, x, mode="avg"):
    """Correct: inference_mode, both heads stacked and averaged."""
    if mode not in {"cls", "dist", "avg"}:
        raise ValueError(mode)
    with torch.inference_mode():
        t = model.forward_features(x)
        both = torch.stack([model.head(t[:, 0]), model.head_dist(t[:, 1])])
    return {"cls": both[0], "dist": both[1], "avg": both.mean(0)}[mode]


def step_zero_grad_first(model, criterion, optimizer, images, labels, make_view):
    """Correct: gradients cleared first (kept as zeros), the outputs named, float(loss)."""
    optimizer.zero_grad(set_to_none=False)
    model.train(True)
    view = make_view(images)
    cls_logits, dist_logits = model(view)
    loss = criterion(view, (cls_logits, dist_logits), labels)
    loss.backward()
    optimizer.step()
    return float(loss)


ALTERNATIVES = {
    "distillation_step clearing the gradients first": Variant({"distillation_step": step_zero_grad_first},
                                                              "test_distillation_step"),
    "add_prefix_tokens with einops": Variant({"add_prefix_tokens": prefix_einops}, "test_distilled_vit"),
    "DistilledViT with normal init and a loop over the blocks": Variant(vit_normal_init, "test_distilled_vit",
                                                                         "test_predict"),
    "DistillationLoss with the KL written out": Variant(
        loss(make_loss_explicit_kl), "test_distillation_loss", "test_distillation_step"),
    "predict with inference_mode and stacked heads": Variant({"predict": predict_stacked}, "test_predict"),
}
