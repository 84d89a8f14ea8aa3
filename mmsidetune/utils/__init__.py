"""Glue around mmengine: trusted checkpoint loading, atomic writes, adapter-only checkpoints,
multi-process CPU runs."""
from .adapter_checkpoint import (ADAPTER_FORMAT, AdapterCheckpointError, adapter_metadata,
                                 adapter_state_dict, is_adapter_checkpoint,
                                 load_adapter_checkpoint, pretrained_sources,
                                 read_adapter_checkpoint, save_adapter_checkpoint,
                                 trunk_fingerprint)
from .atomic_io import (AtomicLocalBackend, atomic_torch_save, atomic_write_bytes,
                        check_output_path)
from .checkpoint import (CheckpointMismatchError, CheckpointReadError, check_checkpoint_fits,
                         check_resume_fits, describe_tuning, is_trusted_checkpoint, load_weights,
                         read_checkpoint_file, trust_checkpoint)
from .dist import CPUDistributedDataParallel, parse_device, setup_cpu_distributed, unwrap_model
from .workdir_lock import WorkDirInUseError, WorkDirLock

__all__ = ['trust_checkpoint', 'is_trusted_checkpoint', 'CheckpointReadError',
           'read_checkpoint_file', 'CheckpointMismatchError', 'check_checkpoint_fits',
           'check_resume_fits', 'describe_tuning', 'load_weights', 'WorkDirLock',
           'WorkDirInUseError',
           'AtomicLocalBackend', 'atomic_write_bytes', 'check_output_path',
           'atomic_torch_save', 'ADAPTER_FORMAT', 'AdapterCheckpointError', 'adapter_state_dict',
           'adapter_metadata', 'trunk_fingerprint', 'save_adapter_checkpoint',
           'load_adapter_checkpoint', 'read_adapter_checkpoint', 'is_adapter_checkpoint',
           'pretrained_sources',
           'CPUDistributedDataParallel', 'setup_cpu_distributed', 'parse_device', 'unwrap_model']
