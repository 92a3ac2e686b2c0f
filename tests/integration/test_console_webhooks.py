"""The console's Webhooks page in a real browser: subscribe, see the secret
once, send a test event, watch the delivery log, send again."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import expect

from harness.webhook_receiver import Receiver
from tests.console_support import Watched, signed_in

SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "")


def test_the_webhooks_page_subscribes_tests_and_sends_again(webhooks_stack, browser):
    receiver = Receiver()
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        signed_in(context, webhooks_stack.url, webhooks_stack.keys["acme"])
        watched = Watched(context.new_page())
        page = watched.page
        page.goto(f"{webhooks_stack.url}/console/#/webhooks")
        expect(page.locator("#webhook-table")).to_contain_text("No subscriptions yet")
        page.fill("input[name=url]", receiver.url)
        page.check("input[value='zone.entered']")
        page.click("button:has-text('Subscribe')")
        secret = page.locator("#webhook-secret")
        expect(secret).to_contain_text("whsec_")
        expect(page.locator("#webhook-table")).to_contain_text(receiver.url)

        expect(page.locator("#webhook-table tr.on")).to_contain_text(receiver.url)  # selected
        expect(secret).to_contain_text("whsec_")  # still shown once it is selected
        page.click("#send-test")
        rows = page.locator("#delivery-rows tr")
        expect(rows.first).to_contain_text("webhook.test", timeout=30_000)
        expect(rows.first).to_contain_text("200")
        assert receiver.wait_for(lambda r: len(r.received) == 1, 30)
        page.locator("#delivery-rows tr").first.locator("button").click()  # send again
        expect(rows).to_have_count(2, timeout=30_000)
        expect(rows.first.locator("td").nth(3)).to_have_text("2")  # the second attempt
        assert receiver.wait_for(lambda r: len(r.received) == 2, 30)
        assert len(receiver.ids()) == 1  # the same event (same webhook-id) twice
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SCREENSHOTS) / "console-webhooks.png"), full_page=True)
        page.reload()  # the secret is not shown again
        expect(page.locator("#webhook-table")).to_contain_text(receiver.url)
        expect(page.locator("#webhook-secret")).to_have_count(0)
        watched.check()
    finally:
        context.close()
        receiver.close()
