"""Readable names for what a run varies: its architecture, objective and regularizers."""
from __future__ import annotations

from lib.config import RunConfig
from lib.profiles import PROFILES


def architecture(cfg: RunConfig) -> str:
    """'dense', 'MoE 16' (16 experts, `lib.models.MoEFeedForward`), 'shared x2' or 'half shared x2' (ALBERT-style)."""
    m = cfg.model
    if m.num_experts:
        return f"MoE {m.num_experts}"
    if m.layer_repeats > 1:
        return f"{'shared' if m.num_layers * 2 > _preset_layers(cfg) else 'half shared'} x{m.layer_repeats}"
    return "dense"


def _preset_layers(cfg: RunConfig) -> int:
    """Layers of the named preset in the run's profile (falls back to the run's own)."""
    profile = PROFILES.get(cfg.profile)
    preset = profile.presets.get(cfg.model.name) if profile else None
    return preset.num_layers if preset else cfg.model.num_layers


def regularizer(cfg: RunConfig) -> str:
    """'none', or the regularizers joined by ' + ', e.g. 'dropout 0.1 from 50% + weight decay 0.1'."""
    m, o = cfg.model, cfg.optim
    parts = []
    if m.dropout:
        parts.append(f"dropout {m.dropout:g}" + (f" from {m.dropout_start:.0%}" if m.dropout_start else ""))
    if m.droppath:
        parts.append(f"droppath {m.droppath:g}")
    if o.label_smoothing:
        parts.append(f"label smoothing {o.label_smoothing:g}")
    if o.weight_decay:
        parts.append(f"weight decay {o.weight_decay:g}")
    return " + ".join(parts) or "none"

