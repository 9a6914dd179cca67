"""Screenshots of the chat page for the README: `make screenshots` writes docs/ui-*.png.

The real service on the offline model, scripted to call a tool and answer in Markdown, in
Debian's Chromium at desktop and phone width.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.chromium import CHROMIUM, LAUNCH_ARGS
from tests.live_service import live_service

DOCS = Path(__file__).resolve().parent.parent / "docs"
ANSWER = """Here is how it works:

1. The **calculator** tool multiplied the numbers: `6*7 = 42`.
2. In Python you would write:

```python
print(6 * 7)
```

| expression | value |
|---|--:|
| `6*7` | 42 |
| `2**10` | 1024 |

See the [Python tutorial](https://docs.python.org/3/tutorial/) for more."""
SCRIPT = [
    {
        "text": "Let me compute that.",
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}],
    },
    {"text": ANSWER},
]


def converse(page: Page, base_url: str) -> None:
    page.goto(base_url + "/")
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    page.locator("#prompt").fill("What is 6*7, and how would I compute it in Python?")
    page.locator("#prompt").press("Enter")
    expect(page.locator("article.turn").last).to_have_attribute("data-status", "completed")
    page.locator("details.tool summary").first.click()
    page.get_by_role("button", name="Good answer").click()
    expect(page.locator(".feedback-status")).to_have_text("Thanks, feedback recorded.")
    page.locator("#log").evaluate("log => { log.scrollTop = log.scrollHeight; }")


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "script.json"
        script.write_text(json.dumps(SCRIPT))
        env = {
            "AGENT_TOOLS": "calculator",
            "OFFLINE_SCRIPT": str(script),
            "AGENT_TRACING": "true",
            "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db",
        }
        with live_service(env) as service, sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            for name, options in {
                "desktop": {"viewport": {"width": 1280, "height": 1000}},
                "phone": {
                    "viewport": {"width": 390, "height": 844},
                    "color_scheme": "dark",
                    "device_scale_factor": 2,
                },
            }.items():
                context = browser.new_context(**options)  # type: ignore[arg-type]
                page = context.new_page()
                converse(page, service.base_url)
                page.screenshot(path=DOCS / f"ui-{name}.png")
                context.close()
            browser.close()


if __name__ == "__main__":
    main()
