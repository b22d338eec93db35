import { WebSocket } from 'undici';

/** A WebSocket once open (undici's: the same arguments); rejects when its handshake fails. */
export async function openWebSocket(...args: ConstructorParameters<typeof WebSocket>): Promise<WebSocket> {
  const ws = new WebSocket(...args);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve());
    ws.addEventListener('error', () => reject(new Error('websocket failed to open')));
  });
  return ws;
}
