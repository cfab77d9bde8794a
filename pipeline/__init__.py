"""meit-corpus pipeline: PhysioNet ECG folders in, a patient-split instruction corpus out.

A pure library (no orchestration imports). The data path, one module per step, imports pointing
one way (leaves first):

    config, errors, storage, hashing, shards                    settings, fsspec I/O, atomic writes
    wfdb_io, leads, kernels, signal, quality, conditioning     WFDB records -> 12 x T float16
    text/, reports                                             reports -> English
    sources/ (ptbxl, mimic; the Source protocol)               one file per dataset + its layout
    demo/                                                      synthetic PhysioNet-layout inputs
    qa, prompts, examples                                      facts, templates, corpus rows
    units, unit_files, progress                                dataclasses; units' rows; completion
                                                               records
    plan -> execute -> finalise                                discover + fingerprint + units;
                                                               shards; ledger/manifest/card
    build                                                      the one orchestrator
    cli, console, inspect                                      the `meit-corpus` command

The CLI (`pipeline.cli`) and the Prefect flow (`flows/`) both run :func:`pipeline.build.build`.
"""

__version__ = "0.1.0"
