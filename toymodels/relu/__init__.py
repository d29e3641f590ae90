"""ReLU networks trained with large-step-size SGD (thesis Ch. 6, Sec. 6.4.2) and with SAM (Sec. 5.5.3).

``python -m toymodels.relu regression1d``: the 12-point 1D regression of Blanc et al. (Fig. 6.4,
6.12, 6.13); ``teacher3``: three-layer teacher–student (Fig. 6.5, :mod:`.teacher3`); ``teacher2``:
two-layer teacher–student in d = 2 (Fig. 6.10, 6.14, :mod:`.teacher2`); ``sam``: full-batch ERM vs SAM
(Fig. 5.7, :mod:`.sam`). The teacher modules' names that would clash are exported with a 2/3 suffix
(``run_schedules3``, ``summarize3``, ...). Numba kernels: :mod:`._kernels` (one module per model), numpy
references of the same names: :mod:`._reference`; random streams: :mod:`.streams`.
"""
from .metrics import count_kinks, feature_sparsity, jacobian_rank, kink_positions
from .model import (ReLUConfig, ReLUResult, activations, blanc_data, checkpoints, init_params, jacobian,
                    predict, train)
from .schedule import warmup_decay_schedule
from .teacher2 import (Teacher2Config, Teacher2Result, init_student2, jacobian2, predict2, run_schedules2,
                       summarize2, teacher2_data, teacher2_params, train_teacher2)
from .teacher3 import Teacher3Config, Teacher3Result, fresh_ranks, hidden_activations, jacobian3, observations
from .teacher3 import init_student as init_student3
from .teacher3 import predict3
from .teacher3 import run_schedules as run_schedules3
from .teacher3 import summarize as summarize3
from .teacher3 import teacher_data as teacher3_data
from .teacher3 import teacher_params as teacher3_params
from .teacher3 import train_teacher3

__all__ = ["ReLUConfig", "ReLUResult", "activations", "blanc_data", "checkpoints", "count_kinks",
           "feature_sparsity", "init_params", "jacobian", "jacobian_rank", "kink_positions", "predict",
           "train", "warmup_decay_schedule",
           "Teacher2Config", "Teacher2Result", "init_student2", "jacobian2", "predict2", "run_schedules2",
           "summarize2", "teacher2_data", "teacher2_params", "train_teacher2",
           "Teacher3Config", "Teacher3Result", "fresh_ranks", "hidden_activations", "init_student3", "jacobian3",
           "observations", "predict3", "run_schedules3", "summarize3", "teacher3_data", "teacher3_params",
           "train_teacher3"]
