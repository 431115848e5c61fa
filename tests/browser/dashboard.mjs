// Drives Debian's chromium (headless) through the smsq dashboard. Run by
// tests/it/dashboard.rs, which sets up the queue and passes what to expect in the
// environment; exits non-zero with a message on the first thing that is not as expected.
import { writeFileSync, appendFileSync } from "node:fs";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("SMSQ_URL");
const phase = env("PHASE");
const htmlOut = env("HTML_OUT");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
page.setDefaultTimeout(10_000);
const keep = async (what) => appendFileSync(htmlOut, `\n<!-- ${what} -->\n` + await page.content());
const textOf = (selector) => page.locator(selector).innerText();

try {
  await page.goto(`${base}/dashboard`);
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#token", env("SMSQ_TOKEN"));
  await page.click("#login-button");
  await page.waitForSelector("#app:not([hidden])");

  if (phase === "before") {
    const backlog = env("EXPECT_BACKLOG");
    await page.waitForFunction((b) => document.getElementById("backlog").textContent === b, backlog);
    await keep("status");

    await page.fill("#query", env("JOB_ID"));
    await page.click("#search-button");
    await page.waitForSelector("#history tbody tr");
    const history = await textOf("#history");
    for (const status of ["queued", "sending", "sent", "delivered"]) {
      if (!history.includes(status)) throw new Error(`history lacks ${status}: ${history}`);
    }
    await keep("job history");

    await page.fill("#query", env("MOBILE"));
    await page.click("#search-button");
    await page.waitForSelector("#found tbody tr");
    const found = await textOf("#found");
    if (!found.includes(env("MASKED"))) throw new Error(`search by mobile: ${found}`);
    await keep("search by mobile");

    const deadJob = env("DEAD_JOB");
    const deadRow = page.locator("#dead tbody tr", { hasText: deadJob });
    await deadRow.locator("button.replay").click();
    await page.waitForFunction(() => document.getElementById("dead-report").textContent.includes("1 replayed"));
    await keep("after replay");
  } else {
    await page.fill("#query", env("DEAD_JOB"));
    await page.click("#search-button");
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#history tbody tr")].map((r) => r.cells[1].textContent);
      return rows.join(",").includes("dead,replayed,sending,sent");
    });
    await keep("replayed job");

    // The provider account: disabled and enabled again from its row (each asks first).
    page.on("dialog", (d) => d.accept());
    const account = page.locator("#providers tbody tr", { hasText: "ronglian" });
    await account.locator("button").click();
    await page.waitForFunction(() => document.getElementById("providers").textContent.includes("DISABLED"));
    await keep("provider disabled");
    await account.locator("button", { hasText: "Enable" }).click();
    await page.waitForFunction(() => {
      const text = document.getElementById("providers").textContent;
      return !text.includes("DISABLED") && text.includes("closed");
    });
    await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });
  }
  console.log(`dashboard ${phase}: ok`);
} catch (e) {
  writeFileSync(htmlOut + ".failure.html", await page.content());
  console.error(`dashboard ${phase}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
