// The signalling socket of a live visit or of the monitoring wall (docs/signalling.md): JSON objects
// with a `type`, one handler for all of them, and the close code told to whoever opened it.

/** The page's settings, written by the server as a JSON data block (CSP allows no inline script). */
export function readConfig(id) {
  const block = document.getElementById(id);
  if (!block) throw new Error(`no configuration block #${id}`);
  return JSON.parse(block.textContent);
}

/** ws:// or wss:// for a path on this site, the same scheme strength as the page. */
export function socketUrl(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/** Fills `%(name)s` placeholders of a translated text. */
export function fill(text, params) {
  return text.replace(/%\((\w+)\)s/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

export class Channel {
  /**
   * @param {string} path  the socket's path and query
   * @param {object} hooks onMessage(message), onOpen(), onClose(code, reason, wanted), onRoundTrip(ms)
   * @param {object} options keepAliveMs: send `ping` this often and time the `pong` (0: never)
   */
  constructor(path, hooks, { keepAliveMs = 0 } = {}) {
    this.path = path;
    this.hooks = hooks;
    this.keepAliveMs = keepAliveMs;
    this.socket = null;
    this.closing = false;
    this.pingSentAt = null;
    this.timer = null;
  }

  open() {
    this.closing = false;
    const socket = new WebSocket(socketUrl(this.path));
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (socket !== this.socket) return;
      if (this.keepAliveMs > 0) {
        this.timer = window.setInterval(() => this.ping(), this.keepAliveMs);
      }
      this.hooks.onOpen?.();
    });
    socket.addEventListener('message', (event) => {
      if (socket !== this.socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!message || typeof message.type !== 'string') return;
      if (message.type === 'pong' && this.pingSentAt !== null) {
        this.hooks.onRoundTrip?.(performance.now() - this.pingSentAt);
        this.pingSentAt = null;
        return;
      }
      this.hooks.onMessage(message);
    });
    socket.addEventListener('close', (event) => {
      if (socket !== this.socket) return;
      this.stopTimer();
      this.socket = null;
      this.hooks.onClose?.(event.code, event.reason, this.closing);
    });
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  ping() {
    this.pingSentAt = performance.now();
    this.send({ type: 'ping' });
  }

  /** Closes on purpose: onClose is told `wanted`, so nobody reconnects. */
  close() {
    this.closing = true;
    this.stopTimer();
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
  }

  stopTimer() {
    if (this.timer !== null) window.clearInterval(this.timer);
    this.timer = null;
  }
}
