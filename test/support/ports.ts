/** Loopback ports for the servers tests start. */
import { createServer, type AddressInfo, type Server } from 'node:net';

/** Ports nobody listens on right now, all distinct (held open together while they are picked). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((done, fail) => {
        server.once('error', fail);
        server.listen(0, '127.0.0.1', () => done());
      });
      ports.push((server.address() as AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((done) => s.close(() => done()))));
  }
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0] as number;
}
