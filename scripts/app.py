"""Serve a fine-tuned scratchgpt classifier as a web page and API: see ``--help``.

python scripts/app.py --model outputs/sms-spam      # then open http://127.0.0.1:7860
"""

from scratchgpt.cli import app_main

if __name__ == "__main__":
    raise SystemExit(app_main())
