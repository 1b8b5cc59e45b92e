import net from 'node:net';

/**
 * A loopback TCP proxy for tests that must lose a server without touching it:
 * `cut()` destroys every connection and closes the port, `restore()` listens
 * on the same port again. The upstream port is read on each new connection,
 * so a test can point the proxy at a restarted server (`target.port = …`)
 * while clients keep one fixed address.
 *
 * @example
 * ```ts
 * const target = { port: server.port };
 * const proxy = await startTcpProxy(target);
 * url.port = String(proxy.port);
 * await proxy.cut(); // clients see their connections die
 * ```
 */
export interface TcpProxy {
  readonly port: number;
  /** Destroys every proxied connection and closes the port. */
  cut(): Promise<void>;
  /** Listens on the same port again after {@link cut}. */
  restore(): Promise<void>;
  /** Same as {@link cut}, without waiting. */
  close(): void;
}

export async function startTcpProxy(target: { readonly port: number } | number): Promise<TcpProxy> {
  const upstream = typeof target === 'number' ? { port: target } : target;
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const listen = async () => {
    const s = net.createServer((down) => {
      const up = net.connect(upstream.port, '127.0.0.1');
      for (const socket of [down, up]) {
        sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          sockets.delete(socket);
          down.destroy();
          up.destroy();
        });
      }
      down.pipe(up).pipe(down);
    });
    server = s;
    await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve));
    port = (s.address() as net.AddressInfo).port;
  };
  const cut = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = undefined;
      for (const socket of sockets) socket.destroy();
      if (s === undefined) resolve();
      else s.close(() => resolve());
    });
  await listen();
  return {
    get port() {
      return port;
    },
    cut,
    restore: listen,
    close: () => {
      void cut();
    },
  };
}
