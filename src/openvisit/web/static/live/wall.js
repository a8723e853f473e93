// The monitoring wall: one tile per live or imminent visit of a facility, fed by /ws/monitor
// (docs/signalling.md). An officer watches a tile (a receive-only peer connection carrying both sides'
// audio and video, muted until "Listen"), warns both sides, pauses one side's video, or ends the visit
// with a reason after a confirmation. A legal visit is a privileged tile: no video and no controls; the
// server refuses any watch of it whatever the page sends.

import { Channel, fill, readConfig } from './channel.js';
import { gatheredOffer } from './rtc.js';

const SIDES = ['visitor', 'resident'];
const MONITOR_ORDER = ['visitor', 'resident'];
const RECONNECT_FIRST_MS = 1000;
const RECONNECT_MAX_MS = 10000;
const ENDED_TILE_MS = 60000;

function clockText(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  return `${minutes}:${String(total % 60).padStart(2, '0')}`;
}

function part(tile, name) {
  return tile.querySelector(`[data-part="${name}"]`);
}

export class Wall {
  constructor(root, config) {
    this.root = root;
    this.config = config;
    this.text = config.text;
    this.offset = Date.parse(config.serverNow) - Date.now();
    this.tiles = new Map(); // visit id -> {element, visit, pc, streams, listening, ended}
    this.wanted = new Set(); // visits the officer chose to watch, watched again after a reconnect
    this.channel = null;
    this.reconnectDelay = RECONNECT_FIRST_MS;
    this.timer = null;
  }

  serverNow() {
    return Date.now() + this.offset;
  }

  start() {
    this.connect();
    this.timer = window.setInterval(() => this.tick(), 1000);
  }

  connect() {
    this.channel = new Channel(this.config.socket, {
      onOpen: () => {
        this.reconnectDelay = RECONNECT_FIRST_MS;
        this.status('');
      },
      onMessage: (message) => this.onMessage(message),
      onClose: (code, reason, wanted) => this.onClosed(code, wanted),
    });
    this.channel.open();
  }

  onClosed(code, wanted) {
    for (const id of this.tiles.keys()) this.closePeer(id);
    if (wanted) return;
    if (code === 4403) {
      this.status(this.lastError || this.text.refused, true);
      return;
    }
    this.status(this.text.reconnecting, true);
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
    window.setTimeout(() => this.connect(), delay);
  }

  status(text, problem = false) {
    const box = document.getElementById('wall-status');
    if (!box) return;
    box.textContent = text;
    box.classList.toggle('problem', problem);
    box.hidden = !text;
  }

  onMessage(message) {
    switch (message.type) {
      case 'visits':
        return this.onVisits(message.visits || []);
      case 'answer':
        return this.onAnswer(message);
      case 'ended':
        return this.onEnded(message);
      case 'error':
        return this.onError(message);
      default:
        return undefined;
    }
  }

  // --- tiles ----------------------------------------------------------------------------------------

  onVisits(visits) {
    const seen = new Set();
    for (const visit of visits) {
      seen.add(visit.id);
      const known = this.tiles.get(visit.id);
      if (known) {
        known.visit = visit;
        this.describe(known);
      } else {
        this.addTile(visit);
      }
    }
    for (const [id, tile] of [...this.tiles]) {
      // An ended visit leaves the list at once; its tile stays a while so the officer sees how it ended.
      if (!seen.has(id) && !tile.ended) this.removeTile(id);
    }
    const empty = document.getElementById('wall-empty');
    if (empty) empty.hidden = this.tiles.size > 0;
    for (const id of this.wanted) {
      const tile = this.tiles.get(id);
      if (tile && !tile.pc && !tile.ended) this.watch(id);
    }
    this.tick();
  }

  addTile(visit) {
    const privileged = visit.kind === 'legal';
    const template = document.getElementById(privileged ? 'tile-privileged' : 'tile-social');
    const element = template.content.firstElementChild.cloneNode(true);
    element.dataset.visitId = String(visit.id);
    const titleId = `tile-${visit.id}-title`;
    part(element, 'title').id = titleId;
    // Every control of a tile names the visit it acts on (several tiles show the same buttons).
    element.querySelectorAll('button, input, select, textarea').forEach((control) => {
      control.setAttribute('aria-describedby', titleId);
    });
    element.querySelectorAll('[data-for]').forEach((label) => {
      const id = `tile-${visit.id}-${label.dataset.for}`;
      label.htmlFor = id;
      element.querySelector(`[data-field="${label.dataset.for}"]`).id = id;
    });
    const tile = { element, visit, pc: null, streams: new Map(), listening: false, ended: false, paused: {} };
    this.tiles.set(visit.id, tile);
    if (!privileged) this.bindControls(tile);
    this.describe(tile);
    this.root.append(element);
  }

  removeTile(id) {
    this.closePeer(id);
    this.tiles.get(id)?.element.remove();
    this.tiles.delete(id);
    this.wanted.delete(id);
  }

  describe(tile) {
    const { visit, element } = tile;
    part(element, 'title').textContent = fill(this.text.tileTitle, { resident: visit.resident, visitor: visit.visitor });
    part(element, 'station').textContent = visit.station || '';
    const sides = new Set(visit.sides || []);
    for (const side of SIDES) {
      const chip = part(element, `side-${side}`);
      if (!chip) continue;
      const connected = sides.has(side);
      chip.textContent = connected ? this.text[`${side}Connected`] : this.text[`${side}Away`];
      chip.classList.toggle('connected', connected);
    }
    if (!tile.ended) part(element, 'state').textContent = this.text.states[visit.status] || visit.status;
    element.dataset.status = tile.ended ? 'ended' : visit.status;
  }

  tick() {
    const now = this.serverNow();
    for (const tile of this.tiles.values()) {
      const left = part(tile.element, 'left');
      if (!left) continue;
      const starts = Date.parse(tile.visit.starts_at);
      const ends = Date.parse(tile.visit.ends_at);
      if (tile.ended) left.textContent = '';
      else if (now < starts) left.textContent = fill(this.text.startsIn, { time: clockText(starts - now) });
      else left.textContent = fill(this.text.timeLeft, { time: clockText(ends - now) });
    }
  }

  bindControls(tile) {
    const id = tile.visit.id;
    const { element } = tile;
    element.querySelector('[data-action="watch"]').addEventListener('click', () => {
      if (tile.pc) this.unwatch(id);
      else this.watch(id);
    });
    element.querySelector('[data-action="listen"]').addEventListener('click', () => this.listen(id, !tile.listening));
    element.querySelectorAll('[data-action="pause"]').forEach((button) => {
      button.addEventListener('click', () => {
        const side = button.dataset.side;
        const paused = button.getAttribute('aria-pressed') !== 'true';
        if (this.channel?.send({ type: 'pause', visit_id: id, side, paused })) {
          button.setAttribute('aria-pressed', String(paused));
          this.tileStatus(tile, paused ? this.text[`paused_${side}`] : this.text[`resumed_${side}`]);
        }
      });
    });
    element.querySelector('[data-form="warn"]').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = event.currentTarget.querySelector('[data-field="warning"]');
      const text = input.value.trim();
      if (!text) {
        input.focus();
        return;
      }
      if (this.channel?.send({ type: 'warn', visit_id: id, text })) {
        input.value = '';
        this.tileStatus(tile, this.text.warningSent);
      }
    });
    const terminate = element.querySelector('[data-form="terminate"]');
    const ask = element.querySelector('[data-action="end"]');
    ask.addEventListener('click', () => {
      terminate.hidden = false;
      ask.hidden = true;
      terminate.querySelector('[data-field="reason"]').focus();
    });
    terminate.querySelector('[data-action="keep"]').addEventListener('click', () => {
      terminate.hidden = true;
      ask.hidden = false;
      ask.focus();
    });
    terminate.addEventListener('submit', (event) => {
      event.preventDefault();
      const reason = terminate.querySelector('[data-field="reason"]').value;
      const note = terminate.querySelector('[data-field="note"]').value.trim();
      if (!reason) {
        this.tileStatus(tile, this.text.chooseReason, true);
        terminate.querySelector('[data-field="reason"]').focus();
        return;
      }
      if (this.channel?.send({ type: 'terminate', visit_id: id, reason, note })) {
        this.tileStatus(tile, this.text.ending);
        terminate.querySelector('[type="submit"]').disabled = true;
      }
    });
  }

  tileStatus(tile, text, problem = false) {
    const box = part(tile.element, 'status');
    if (!box) return;
    box.textContent = text;
    box.classList.toggle('problem', problem);
  }

  // --- watching -------------------------------------------------------------------------------------

  /** Asks the server for a visit's media. Sent for any id: the server alone decides who may be watched. */
  async watch(id) {
    this.wanted.add(id);
    const tile = this.tiles.get(id);
    const pc = new RTCPeerConnection({ iceServers: this.config.iceServers });
    if (tile) tile.pc = pc;
    // Video first: the engine's answer keeps every m-line on the first one's transport (max-bundle).
    for (const kind of ['video', 'audio']) {
      for (let i = 0; i < MONITOR_ORDER.length; i += 1) pc.addTransceiver(kind, { direction: 'recvonly' });
    }
    pc.addEventListener('track', (event) => this.onTrack(id, pc, event));
    this.setWatching(tile, true);
    const sdp = await gatheredOffer(pc);
    if (tile && tile.pc !== pc) {
      pc.close();
      return;
    }
    if (!this.channel?.send({ type: 'watch', visit_id: id, sdp })) {
      pc.close();
      if (tile) tile.pc = null;
      this.setWatching(tile, false);
    }
    if (!tile) pc.close();
  }

  unwatch(id) {
    this.wanted.delete(id);
    this.channel?.send({ type: 'unwatch', visit_id: id });
    this.closePeer(id);
  }

  closePeer(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    tile.pc?.close();
    tile.pc = null;
    tile.streams.clear();
    tile.element.querySelectorAll('video').forEach((video) => {
      video.srcObject = null;
    });
    this.listen(id, false);
    this.setWatching(tile, false);
  }

  setWatching(tile, watching) {
    if (!tile) return;
    const button = tile.element.querySelector('[data-action="watch"]');
    if (!button) return;
    button.setAttribute('aria-pressed', String(watching));
    button.textContent = watching ? this.text.stopWatching : this.text.watch;
    const listen = tile.element.querySelector('[data-action="listen"]');
    if (listen) listen.disabled = !watching;
  }

  async onAnswer(message) {
    const tile = this.tiles.get(message.visit_id);
    if (!tile?.pc || tile.pc.signalingState !== 'have-local-offer') return;
    await tile.pc.setRemoteDescription({ type: 'answer', sdp: message.sdp });
  }

  /** The engine sends the visitor's media on the first transceiver of each kind and the resident's on
   * the second (media/engine.py, MONITOR_ORDER), so a track's side is its position among its kind. */
  onTrack(id, pc, event) {
    const tile = this.tiles.get(id);
    if (!tile || tile.pc !== pc) return;
    const sameKind = pc.getTransceivers().filter((t) => t.receiver.track.kind === event.track.kind);
    const side = MONITOR_ORDER[sameKind.indexOf(event.transceiver)] || MONITOR_ORDER[0];
    let stream = tile.streams.get(side);
    if (!stream) {
      stream = new MediaStream();
      tile.streams.set(side, stream);
    }
    stream.addTrack(event.track);
    const video = tile.element.querySelector(`video[data-side="${side}"]`);
    if (video) {
      video.srcObject = stream;
      video.muted = !tile.listening;
      video.play().catch(() => {});
    }
  }

  listen(id, on) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    tile.listening = on && Boolean(tile.pc);
    tile.element.querySelectorAll('video').forEach((video) => {
      video.muted = !tile.listening;
    });
    const button = tile.element.querySelector('[data-action="listen"]');
    if (button) {
      button.setAttribute('aria-pressed', String(tile.listening));
      button.textContent = tile.listening ? this.text.mute : this.text.listen;
    }
  }

  // --- the end and refusals -------------------------------------------------------------------------

  onEnded(message) {
    const tile = this.tiles.get(message.visit_id);
    if (!tile) return;
    tile.ended = true;
    this.wanted.delete(message.visit_id);
    this.closePeer(message.visit_id);
    const reason = this.text.reasons[message.reason] || message.reason || '';
    const outcome = this.text.outcomes[message.outcome] || message.outcome;
    part(tile.element, 'state').textContent = reason ? `${outcome}: ${reason}` : outcome;
    tile.element.dataset.status = 'ended';
    tile.element.querySelectorAll('button, input, select, textarea').forEach((control) => {
      control.disabled = true;
    });
    this.tileStatus(tile, fill(this.text.endedStatus, { outcome }));
    this.tick();
    window.setTimeout(() => {
      if (this.tiles.get(message.visit_id) === tile) this.removeTile(message.visit_id);
      const empty = document.getElementById('wall-empty');
      if (empty) empty.hidden = this.tiles.size > 0;
    }, ENDED_TILE_MS);
  }

  onError(message) {
    const text = message.message || this.text.errorGeneric;
    const id = message.visit_id;
    const tile = id ? this.tiles.get(id) : null;
    if (id) {
      this.wanted.delete(id);
      if (tile?.pc) this.closePeer(id);
    }
    if (tile) {
      this.tileStatus(tile, text, true);
      part(tile.element, 'status')?.setAttribute('data-code', message.code || '');
    } else {
      this.lastError = text;
      this.status(text, true);
      document.getElementById('wall-status')?.setAttribute('data-code', message.code || '');
    }
  }
}

const root = document.querySelector('[data-live-wall]');
export const activeWall = root ? new Wall(root, readConfig('wall-config')) : null;
activeWall?.start();
