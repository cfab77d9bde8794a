"""meit-corpus pipeline: PhysioNet ECG folders in, a patient-split instruction corpus out.

A pure library (no orchestration imports): the CLI (`pipeline.cli`) and the Prefect flows (`flows/`)
both call the same functions in `pipeline.build`.
"""

__version__ = "0.1.0"
