"""Two-layer ReLU networks trained with large-step-size SGD (thesis Ch. 6, Sec. 6.4.2).

``python -m toymodels.relu regression1d``: the 12-point 1D regression of Blanc et al. (Fig. 6.4,
6.12, 6.13). Subcommands for the teacher-student models of Sec. 6.4.2 can be added beside it.
"""
from .metrics import count_kinks, feature_sparsity, jacobian_rank, kink_positions
from .model import (ReLUConfig, ReLUResult, activations, blanc_data, checkpoints, init_params, jacobian,
                    predict, train)
from .schedule import warmup_decay_schedule

__all__ = ["ReLUConfig", "ReLUResult", "activations", "blanc_data", "checkpoints", "count_kinks",
           "feature_sparsity", "init_params", "jacobian", "jacobian_rank", "kink_positions", "predict",
           "train", "warmup_decay_schedule"]
