import { existsSync } from 'node:fs';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { Browser } from 'playwright-core';

/** Debian's chromium, headless, with WebGPU on SwiftShader (as test/webgpu/browser.test.ts runs it). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const FLAGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-angle=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-gpu-sandbox',
];

/** The browser (by default with WebGPU), or undefined after skipping the test where there is none (a failure under CI=true). */
export async function launch(t: TestContext, args: string[] = FLAGS): Promise<Browser | undefined> {
  if (!existsSync(CHROMIUM)) {
    if (process.env.CI === 'true') assert.fail(`CI=true but ${CHROMIUM} is missing (apt-get install chromium)`);
    t.skip(`no ${CHROMIUM}`);
    return undefined;
  }
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}
