"""The instruction-template catalog: Jinja files under this folder are data, not code.

Each ``*.j2`` file starts with a Jinja comment holding YAML metadata (``id``, ``task``, ``register``,
``origin``, optional ``sources`` and ``requires``); the rest of the file is the template.
``pipeline.prompts`` loads and renders them.
"""

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent
