import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import type { Model } from '../../src/model.js';
import { createServer, type Server, type ServerOptions } from '../../src/server/app.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read error bodies freely
export interface Reply {
  status: number;
  json: any;
  headers: Headers;
}

/** A server on a random loopback port, the real `openai` client pointed at it, and raw fetch. */
export interface Running {
  server: Server;
  url: string;
  client: OpenAI;
  modelId: string;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Reply>;
  metric(name: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startServer(model: Model, o: Partial<ServerOptions> = {}): Promise<Running> {
  const server = await createServer({ model, modelId: 'mamba-ts-default', log: () => {}, ...o });
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (server.app.server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: o.apiKey ?? 'none', maxRetries: 0, timeout: 60_000 });
  return {
    server,
    url,
    client,
    modelId: 'mamba-ts-default',
    async post(path, body, headers = {}) {
      const r = await fetch(url + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await r.text();
      let json: unknown = text;
      try {
        json = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: r.status, json, headers: r.headers };
    },
    async metric(name) {
      const text = await (await fetch(`${url}/metrics`)).text();
      let sum = 0;
      for (const line of text.split('\n')) {
        if (line.startsWith(name + ' ') || line.startsWith(name + '{')) sum += Number(line.split(' ').pop());
      }
      return sum;
    },
    stop: () => server.close(1000),
  };
}
