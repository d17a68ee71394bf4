"""Chapter 4 (DeiT): plausible student bugs, each of which must lose points, and the BUGS dict."""

import torch
import torch.nn.functional as F
from torch import nn

from nbexec import Variant

# Plausible student bugs ------------------------------------------------------------------------

def prefix_dist_first(patch_tokens, pos_embed, cls_token, dist_token):
    B = patch_tokens.shape[0]
    return torch.cat([dist_token.expand(B, -1, -1), cls_token.expand(B, -1, -1), patch_tokens], 1) + pos_embed


def prefix_dist_without_position(patch_tokens, pos_embed, cls_token, dist_token):
    """The distillation token gets no position embedding (the slot's embedding is skipped)."""
    B = patch_tokens.shape[0]
    cls = cls_token.expand(B, -1, -1) + pos_embed[:, :1]
    return torch.cat([cls, dist_token.expand(B, -1, -1), patch_tokens + pos_embed[:, 2:]], 1)


def make_vit_pos_without_dist(solution_cls):
    class PosWithoutDist(solution_cls):
        """pos_embed of N + 1 slots, as in a plain ViT; the dist token is concatenated after adding it."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pos_embed = nn.Parameter(self.pos_embed.detach()[:, 1:].clone())

        def forward_features(self, x):
            p = self.patch_embed(x)
            B = p.shape[0]
            x = torch.cat([self.cls_token.expand(B, -1, -1), p], 1) + self.pos_embed
            x = torch.cat([x[:, :1], self.dist_token.expand(B, -1, -1), x[:, 1:]], 1)
            return self.norm(self.blocks(x))

    return PosWithoutDist


def make_loss(solution_cls, distill=None, *, swap_alpha=False, plain_cross_entropy=False):
    """A DistillationLoss whose distillation term is ``distill(self, dist_logits, teacher_logits, labels)``
    (default: the right one), with ``alpha`` on the wrong term or ``base_criterion`` replaced by plain
    cross-entropy when asked."""

    class Buggy(solution_cls):
        def forward(self, inputs, outputs, labels):
            cls_logits, dist_logits = outputs if not isinstance(outputs, torch.Tensor) else (outputs, None)
            criterion = F.cross_entropy if plain_cross_entropy else self.base_criterion
            base = criterion(cls_logits, labels)
            if self.kind == "none":
                return base
            self.teacher.eval()
            with torch.no_grad():
                t = self.teacher(inputs)
            alpha = 1 - self.alpha if swap_alpha else self.alpha
            return (1 - alpha) * base + alpha * (distill or right_term)(self, dist_logits, t, labels)

    return Buggy


def right_term(self, d, t, y):
    return _kl(d, t, self.tau) * self.tau**2 / d.numel() if self.kind == "soft" else F.cross_entropy(d, t.argmax(1))


def _kl(d, t, T):
    return F.kl_div(F.log_softmax(d / T, 1), F.log_softmax(t / T, 1), reduction="sum", log_target=True)


def soft_without_tau_squared(self, d, t, y):
    return _kl(d, t, self.tau) / d.numel() if self.kind == "soft" else F.cross_entropy(d, t.argmax(1))


def soft_batchmean(self, d, t, y):
    return _kl(d, t, self.tau) * self.tau**2 / d.shape[0] if self.kind == "soft" else F.cross_entropy(d, t.argmax(1))


def soft_reversed_kl(self, d, t, y):
    if self.kind != "soft":
        return F.cross_entropy(d, t.argmax(1))
    T = self.tau
    kl = F.kl_div(F.log_softmax(t / T, 1), F.log_softmax(d / T, 1), reduction="sum", log_target=True)
    return kl * T * T / d.numel()


def hard_on_labels(self, d, t, y):
    """The distillation head is trained on the true labels: a second class head, the teacher unused."""
    return _kl(d, t, self.tau) * self.tau**2 / d.numel() if self.kind == "soft" else F.cross_entropy(d, y)


def make_loss_teacher_in_train_mode(solution_cls):
    class TeacherTrain(solution_cls):
        def __init__(self, base_criterion, teacher, alpha=0.5, tau=1.0, kind="hard"):
            nn.Module.__init__(self)
            if kind not in ("none", "soft", "hard"):
                raise ValueError(f"unknown kind {kind!r}")
            self.base_criterion, self.teacher = base_criterion, teacher
            self.alpha, self.tau, self.kind = alpha, tau, kind
            if teacher is not None:
                teacher.requires_grad_(False)

        def train(self, mode=True):
            return nn.Module.train(self, mode)

        def forward(self, inputs, outputs, labels):
            cls_logits, dist_logits = outputs if not isinstance(outputs, torch.Tensor) else (outputs, None)
            base = self.base_criterion(cls_logits, labels)
            if self.kind == "none":
                return base
            with torch.no_grad():
                t = self.teacher(inputs)
            if self.kind == "soft":
                distill = _kl(dist_logits, t, self.tau) * self.tau**2 / dist_logits.numel()
            else:
                distill = F.cross_entropy(dist_logits, t.argmax(1))
            return (1 - self.alpha) * base + self.alpha * distill

    return TeacherTrain


def make_loss_teacher_with_grad(solution_cls):
    class TeacherGrad(solution_cls):
        def forward(self, inputs, outputs, labels):
            cls_logits, dist_logits = outputs if not isinstance(outputs, torch.Tensor) else (outputs, None)
            if self.kind == "none":
                return self.base_criterion(cls_logits, labels)
            self.teacher.eval()
            self.teacher.requires_grad_(True)
            t = self.teacher(inputs)  # no torch.no_grad(): gradients flow into the teacher
            distill = F.cross_entropy(dist_logits, t.argmax(1)) if self.kind == "hard" else \
                _kl(dist_logits, t, self.tau) * self.tau**2 / dist_logits.numel()
            return (1 - self.alpha) * self.base_criterion(cls_logits, labels) + self.alpha * distill

    return TeacherGrad


def predict_softmax_average(model, x, mode="avg"):
    with torch.no_grad():
        tokens = model.forward_features(x)
        c, d = model.head(tokens[:, 0]), model.head_dist(tokens[:, 1])
    return {"cls": c, "dist": d, "avg": (c.softmax(-1) + d.softmax(-1)) / 2}[mode]


def predict_heads_swapped(model, x, mode="avg"):
    with torch.no_grad():
        tokens = model.forward_features(x)
        c, d = model.head(tokens[:, 1]), model.head_dist(tokens[:, 0])
    return {"cls": c, "dist": d, "avg": (c + d) / 2}[mode]


def prefix_into_cpu_tensor(patch_tokens, pos_embed, cls_token, dist_token):
    """Fills a new tensor, created on the CPU, row by row."""
    B, N, D = patch_tokens.shape
    x = torch.zeros(B, N + 2, D)
    x[:, 0], x[:, 1], x[:, 2:] = cls_token[:, 0], dist_token[:, 0], patch_tokens
    return x + pos_embed


def prefix_detached_tokens(patch_tokens, pos_embed, cls_token, dist_token):
    """Reads the tokens through .data: the learned tokens never receive a gradient."""
    B = patch_tokens.shape[0]
    return torch.cat([cls_token.data.expand(B, -1, -1), dist_token.data.expand(B, -1, -1), patch_tokens], 1) + pos_embed


def vit_variant(*, shared=False, zeros=False, buffer=False, norm_in_forward=False, same_init=False):
    """The solution's DistilledViT with one mistake in its tokens or its forward_features."""

    def replace(ns):
        base = ns["DistilledViT"]

        class Buggy(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                if shared:
                    self.dist_token = self.cls_token
                if zeros:
                    for p in (self.cls_token, self.dist_token, self.pos_embed):
                        nn.init.zeros_(p)
                if same_init:
                    with torch.no_grad():
                        self.dist_token.copy_(self.cls_token)
                if buffer:
                    pos = self.pos_embed.detach().clone()
                    del self.pos_embed
                    self.register_buffer("pos_embed", pos)

            def forward_features(self, x):
                x = ns["add_prefix_tokens"](self.patch_embed(x), self.pos_embed, self.cls_token, self.dist_token)
                x = self.blocks(x)
                return x if norm_in_forward else self.norm(x)

            def forward(self, x):
                tokens = self.forward_features(x)
                if norm_in_forward:
                    tokens = self.norm(tokens)
                cls_logits, dist_logits = self.head(tokens[:, 0]), self.head_dist(tokens[:, 1])
                return (cls_logits, dist_logits) if self.training else (cls_logits + dist_logits) / 2

        return {"DistilledViT": Buggy}

    return replace


def make_loss_always_pair(solution_cls):
    class AlwaysPair(solution_cls):
        """Unpacks outputs as a pair whatever the kind."""

        def forward(self, inputs, outputs, labels):
            cls_logits, dist_logits = outputs
            return super().forward(inputs, (cls_logits, dist_logits), labels)

    return AlwaysPair


def hard_soft_targets(self, d, t, y):
    """'Hard' distillation with the teacher's probabilities as targets."""
    if self.kind == "soft":
        return _kl(d, t, self.tau) * self.tau**2 / d.numel()
    return F.cross_entropy(d, t.softmax(1))


def make_loss_teacher_requires_grad(solution_cls):
    class KeepsGrad(solution_cls):
        """Calls the teacher under no_grad but leaves its parameters' requires_grad on."""

        def __init__(self, base_criterion, teacher, alpha=0.5, tau=1.0, kind="hard"):
            super().__init__(base_criterion, teacher, alpha, tau, kind)
            if teacher is not None:
                teacher.requires_grad_(True)

    return KeepsGrad


def make_loss_train_returns_none(solution_cls):
    class NoReturn(solution_cls):
        def train(self, mode=True):
            super().train(mode)
            if self.teacher is not None:
                self.teacher.eval()

    return NoReturn


def make_loss_train_without_super(solution_cls):
    class NoSuper(solution_cls):
        def train(self, mode=True):
            if self.teacher is not None:
                self.teacher.eval()
            return self

    return NoSuper


def predict_calls_model(model, x, mode="avg"):
    """'avg' from model(x): right in eval mode only (in training mode the model returns a pair)."""
    if mode not in ("cls", "dist", "avg"):
        raise ValueError(f"unknown mode {mode!r}")
    with torch.no_grad():
        if mode == "avg":
            return model(x)
        tokens = model.forward_features(x)
        return model.head(tokens[:, 0]) if mode == "cls" else model.head_dist(tokens[:, 1])


def make_loss_teacher_not_reset(solution_cls):
    class NotReset(solution_cls):
        """Puts the teacher in eval mode in __init__ and train(), but calls it as it finds it in forward."""

        def forward(self, inputs, outputs, labels):
            cls_logits, dist_logits = outputs if not isinstance(outputs, torch.Tensor) else (outputs, None)
            base = self.base_criterion(cls_logits, labels)
            if self.kind == "none":
                return base
            with torch.no_grad():
                t = self.teacher(inputs)
            return (1 - self.alpha) * base + self.alpha * right_term(self, dist_logits, t, labels)

    return NotReset


def hard_cpu_one_hot(self, d, t, y):
    """Hard targets as one-hot rows written into a tensor made on the CPU."""
    if self.kind == "soft":
        return _kl(d, t, self.tau) * self.tau**2 / d.numel()
    targets = torch.zeros(d.shape).scatter_(1, t.argmax(1, keepdim=True), 1.0)
    return F.cross_entropy(d, targets)


# Plausible student bugs: distillation_step ----------------------------------------------------------------

def step_teacher_reads_clean(model, criterion, optimizer, images, labels, make_view):
    """The student reads the view, the teacher the clean images."""
    model.train()
    loss = criterion(images, model(make_view(images)), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_two_views(model, criterion, optimizer, images, labels, make_view):
    """make_view called twice: the student and the teacher read two different random views."""
    model.train()
    loss = criterion(make_view(images), model(make_view(images)), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_in_eval_mode(model, criterion, optimizer, images, labels, make_view):
    """Never calls model.train(): in eval mode the model returns the average of its heads."""
    view = make_view(images)
    loss = criterion(view, model(view), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_without_zero_grad(model, criterion, optimizer, images, labels, make_view):
    model.train()
    view = make_view(images)
    loss = criterion(view, model(view), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_before_backward(model, criterion, optimizer, images, labels, make_view):
    model.train()
    view = make_view(images)
    loss = criterion(view, model(view), labels)
    optimizer.zero_grad()
    optimizer.step()
    loss.backward()
    return loss.item()


def step_returns_tensor(model, criterion, optimizer, images, labels, make_view):
    model.train()
    view = make_view(images)
    loss = criterion(view, model(view), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def loss(factory):
    """A DistillationLoss derived from the solution's own class by ``factory``."""
    return lambda ns: {"DistillationLoss": factory(ns["DistillationLoss"])}


SEEN_AT_THE_MODEL = dict(check="test_distilled_vit")
SEEN_AT_THE_LOSS = dict(check="test_distillation_loss")
SEEN_AT_PREDICT = dict(check="test_predict")
SEEN_AT_THE_STEP = dict(check="test_distillation_step")

BUGS = {
    "add_prefix_tokens: dist before cls": Variant(
        {"add_prefix_tokens": prefix_dist_first}, "test_distilled_vit", **SEEN_AT_THE_MODEL,
        hint="putting the distillation token before the class token"),
    "add_prefix_tokens: dist token without position embedding": Variant(
        {"add_prefix_tokens": prefix_dist_without_position}, "test_distilled_vit", **SEEN_AT_THE_MODEL,
        hint="leaving the distillation token without its position embedding"),
    "add_prefix_tokens: a new tensor made on the CPU": Variant(
        {"add_prefix_tokens": prefix_into_cpu_tensor}, "test_distilled_vit", **SEEN_AT_THE_MODEL,
        hint="a tensor created without device= lands on the CPU"),
    "add_prefix_tokens: tokens read through .data": Variant(
        {"add_prefix_tokens": prefix_detached_tokens}, "test_distilled_vit", **SEEN_AT_THE_MODEL,
        hint="no .data, .detach() or copies"),
    "DistilledViT: position embedding without the dist slot": Variant(
        lambda ns: {"DistilledViT": make_vit_pos_without_dist(ns["DistilledViT"])}, "test_distilled_vit",
        **SEEN_AT_THE_MODEL, hint="pos_embed has N + 2 rows"),
    "DistilledViT: one parameter for both tokens": Variant(vit_variant(shared=True), "test_distilled_vit",
                                                           **SEEN_AT_THE_MODEL, hint="two separate nn.Parameters"),
    "DistilledViT: tokens and position embedding left at zero": Variant(
        vit_variant(zeros=True), "test_distilled_vit", **SEEN_AT_THE_MODEL, hint="trunc_normal_"),
    "DistilledViT: dist token a copy of the class token": Variant(
        vit_variant(same_init=True), "test_distilled_vit", **SEEN_AT_THE_MODEL, hint="its own random draw"),
    "DistilledViT: position embedding a fixed buffer": Variant(
        vit_variant(buffer=True), "test_distilled_vit", **SEEN_AT_THE_MODEL, hint="not a buffer"),
    "DistilledViT: final norm in forward instead of forward_features": Variant(
        vit_variant(norm_in_forward=True), "test_distilled_vit", **SEEN_AT_THE_MODEL,
        hint="forward_features without the final norm"),
    "soft: tau**2 missing": Variant(loss(lambda cls: make_loss(cls, soft_without_tau_squared)),
                                    "test_distillation_loss", **SEEN_AT_THE_LOSS, hint="leaving out the factor tau**2"),
    "soft: divided by the batch size, not the number of logits": Variant(
        loss(lambda cls: make_loss(cls, soft_batchmean)), "test_distillation_loss", **SEEN_AT_THE_LOSS,
        hint="dividing by the batch size B instead of the number of logits"),
    "soft: KL in the wrong direction": Variant(loss(lambda cls: make_loss(cls, soft_reversed_kl)),
                                               "test_distillation_loss", **SEEN_AT_THE_LOSS,
                                               hint="the reverse direction"),
    "hard: distillation head trained on the labels": Variant(
        loss(lambda cls: make_loss(cls, hard_on_labels)), "test_distillation_loss", "test_distillation_step",
        **SEEN_AT_THE_LOSS, hint="the true labels as targets of the distillation head"),
    "hard: the teacher's probabilities as targets": Variant(
        loss(lambda cls: make_loss(cls, hard_soft_targets)), "test_distillation_loss", **SEEN_AT_THE_LOSS,
        hint="the teacher's probabilities as targets"),
    "hard: one-hot targets in a tensor made on the CPU": Variant(
        loss(lambda cls: make_loss(cls, hard_cpu_one_hot)), "test_distillation_loss", **SEEN_AT_THE_LOSS,
        hint="create no tensor on a fixed device"),
    "loss: alpha weights the wrong term": Variant(loss(lambda cls: make_loss(cls, swap_alpha=True)),
                                                  "test_distillation_loss", **SEEN_AT_THE_LOSS,
                                                  hint="alpha on the class head's term"),
    "loss: base criterion ignored": Variant(loss(lambda cls: make_loss(cls, plain_cross_entropy=True)),
                                            "test_distillation_loss", **SEEN_AT_THE_LOSS,
                                            hint="plain cross-entropy instead of the base_criterion"),
    "loss: 'none' needs the pair of logits": Variant(loss(make_loss_always_pair), "test_distillation_loss",
                                                     **SEEN_AT_THE_LOSS, hint="either a tensor of class logits"),
    "teacher left in training mode": Variant(loss(make_loss_teacher_in_train_mode), "test_distillation_loss",
                                             **SEEN_AT_THE_LOSS, hint="teacher.eval() in __init__"),
    "teacher called with gradients": Variant(loss(make_loss_teacher_with_grad), "test_distillation_loss",
                                             **SEEN_AT_THE_LOSS, hint="torch.no_grad()"),
    "teacher parameters still require gradients": Variant(loss(make_loss_teacher_requires_grad), "test_distillation_loss",
                                                          **SEEN_AT_THE_LOSS, hint="requires_grad_(False)"),
    "teacher woken up later is used in training mode": Variant(loss(make_loss_teacher_not_reset),
                                                               "test_distillation_loss", **SEEN_AT_THE_LOSS,
                                                               hint="inside forward as well"),
    "loss.train() returns None": Variant(loss(make_loss_train_returns_none), "test_distillation_loss",
                                         **SEEN_AT_THE_LOSS, hint="return self"),
    "loss.train() forgets the loss's own mode": Variant(loss(make_loss_train_without_super), "test_distillation_loss",
                                                        **SEEN_AT_THE_LOSS, hint="super().train(mode)"),
    "predict: averages softmax outputs instead of logits": Variant(
        {"predict": predict_softmax_average}, "test_predict", **SEEN_AT_PREDICT,
        hint="the mean of the two heads' softmax outputs"),
    "predict: heads read the wrong tokens": Variant({"predict": predict_heads_swapped}, "test_predict",
                                                    **SEEN_AT_PREDICT, hint="the class head on token 1"),
    "predict: 'avg' is model(x)": Variant({"predict": predict_calls_model}, "test_predict", **SEEN_AT_PREDICT,
                                          hint="in training mode model(x) returns a pair"),
    "distillation_step: the teacher reads the clean images": Variant(
        {"distillation_step": step_teacher_reads_clean}, "test_distillation_step", **SEEN_AT_THE_STEP,
        hint="not the clean images"),
    "distillation_step: two different views": Variant({"distillation_step": step_two_views},
                                                      "test_distillation_step", **SEEN_AT_THE_STEP,
                                                      hint="draw the view once"),
    "distillation_step: model left in eval mode": Variant({"distillation_step": step_in_eval_mode},
                                                          "test_distillation_step", **SEEN_AT_THE_STEP,
                                                          hint="call model.train()"),
    "distillation_step: gradients never cleared": Variant({"distillation_step": step_without_zero_grad},
                                                          "test_distillation_step", **SEEN_AT_THE_STEP,
                                                          hint="the gradients of step 1"),
    "distillation_step: step before backward": Variant({"distillation_step": step_before_backward},
                                                       "test_distillation_step", **SEEN_AT_THE_STEP,
                                                       hint="equals the weights before the step"),
    "distillation_step: returns the loss tensor": Variant({"distillation_step": step_returns_tensor},
                                                          "test_distillation_step", **SEEN_AT_THE_STEP,
                                                          hint="return loss.item()"),
}
