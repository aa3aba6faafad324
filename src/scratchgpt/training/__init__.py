"""Fine-tuning through accelerate: the loop (``loop``), its state (``state``), data loaders
(``data``), the frozen-prefix cache (``prefix_cache``), checkpoints (``checkpoints``), the
output folder and logs (``outputs``, ``plots``) and what changes under FSDP (``fsdp``).
"""
