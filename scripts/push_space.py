"""Create a Gradio Space that demonstrates a model repo with the browser app: see ``--help``.

    python scripts/push_space.py --space me/sms-spam-demo --model-repo me/gpt2-sms-spam \
        --model outputs/sms-spam --dry-run
"""

from scratchgpt.cli import push_space_main

if __name__ == "__main__":
    raise SystemExit(push_space_main())
