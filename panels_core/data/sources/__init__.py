"""Readers: open a file or folder of table data as a typed Table.

``open_table(path)`` picks the reader by the path's suffix (or its magic bytes
when the suffix says nothing): Parquet (lazy), CSV, Arrow IPC / Feather
(memory-mapped), a W&B ``*.table.json`` / ``*.joined-table.json`` export, and
a TensorBoard projector folder (``tensors.tsv`` + ``metadata.tsv``, or a
``projector_config.pbtxt``, whose embeddings ``projector_embeddings`` lists). Every failure names the file, and the line, row
or column, and says what to do.
"""

from panels_core.data.sources.arrow_ipc import read_arrow_ipc
from panels_core.data.sources.csv_reader import read_csv
from panels_core.data.sources.open import FORMATS, detect_format, open_table
from panels_core.data.sources.tensorboard_tsv import projector_embeddings, read_tensorboard
from panels_core.data.sources.wandb_json import read_wandb, wandb_type_to_datatype

__all__ = [
    "FORMATS",
    "detect_format",
    "open_table",
    "projector_embeddings",
    "read_arrow_ipc",
    "read_csv",
    "read_tensorboard",
    "read_wandb",
    "wandb_type_to_datatype",
]
