"""Prefect orchestration of the corpus build.

Flow code only; the deployments live in ``prefect.yaml`` at the repository root.
"""
