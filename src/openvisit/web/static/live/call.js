// One party's side of a live visit: the device check, the rules, then the call itself. Used by the
// visitor's join page, the resident's station and the link-center booth; the server decides the side
// from the session (docs/signalling.md), the page only shows it.
//
// The call: a WebSocket to /ws/visits/{id}; `hello` with the rules accepted; on `welcome` an
// RTCPeerConnection sending the camera and microphone (sendrecv audio and video) whose offer carries
// every ICE candidate; the server's `answer` completes it. A dropped socket or peer connection is
// reconnected from scratch while the visit's time lasts; a refusal, a replacement or the end is final.

import { Channel, fill, readConfig } from './channel.js';
import { connectionFacts, gatheredOffer } from './rtc.js';

const FINAL_CLOSE_CODES = new Set([4000, 4403, 4409]);
const RETRY_CODES = new Set(['media.failed', 'media.room_not_open']);
const KEEP_ALIVE_MS = 15000;
const STATS_EVERY_MS = 2000;
const RECONNECT_FIRST_MS = 1000;
const RECONNECT_MAX_MS = 8000;
const END_GRACE_MS = 5000;
const PEER_LOST_MS = 4000;

function $(id) {
  return document.getElementById(id);
}

function show(element, visible = true) {
  if (element) element.hidden = !visible;
}

function say(element, text) {
  if (element) element.textContent = text;
}

function clockText(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export class Call {
  constructor(config) {
    this.config = config;
    this.text = config.text;
    this.startsAt = Date.parse(config.startsAt);
    this.endsAt = Date.parse(config.endsAt);
    this.opensAt = Date.parse(config.opensAt);
    this.offset = Date.parse(config.serverNow) - Date.now();
    this.state = 'check'; // check, joining, connected, reconnecting, left, ended, replaced, refused
    this.localStream = null;
    this.pc = null;
    this.channel = null;
    this.remoteStream = null;
    this.reconnectDelay = RECONNECT_FIRST_MS;
    this.reconnectTimer = null;
    this.peerLostTimer = null;
    this.statsTimer = null;
    this.tickTimer = null;
    this.audio = null;
    this.endedLocallyAt = null;
    this.firstFrameMs = null;
    this.joinClickedAt = null;
  }

  serverNow() {
    return Date.now() + this.offset;
  }

  // --- the device check -------------------------------------------------------------------------

  async start() {
    $('check-again')?.addEventListener('click', () => this.checkDevices());
    $('rules-form')?.addEventListener('submit', (event) => {
      event.preventDefault();
      this.join();
    });
    $('mute-mic')?.addEventListener('click', (event) => this.toggleTrack('audio', event.currentTarget));
    $('camera-off')?.addEventListener('click', (event) => this.toggleTrack('video', event.currentTarget));
    $('leave')?.addEventListener('click', () => this.leave());
    $('rejoin')?.addEventListener('click', () => this.join());
    $('dismiss-warning')?.addEventListener('click', () => show($('warning-banner'), false));
    this.tickTimer = window.setInterval(() => this.tick(), 500);
    this.tick();
    await Promise.all([this.checkDevices(), this.checkConnection()]);
  }

  async checkDevices() {
    const status = $('device-status');
    say(status, this.text.checking);
    this.stopLocal();
    try {
      this.localStream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true },
        video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15, max: 30 } },
      });
    } catch (error) {
      this.localStream = null;
      say(status, fill(this.text.devicesMissing, { error: error.name || String(error) }));
      status?.classList.add('problem');
      return false;
    }
    status?.classList.remove('problem');
    const hasVideo = this.localStream.getVideoTracks().length > 0;
    const hasAudio = this.localStream.getAudioTracks().length > 0;
    say(status, hasVideo && hasAudio ? this.text.devicesReady : this.text.devicesPartial);
    for (const id of ['device-preview', 'local-video']) {
      const video = $(id);
      if (video) {
        video.srcObject = this.localStream;
        video.play().catch(() => {});
      }
    }
    this.meterMicrophone();
    return true;
  }

  meterMicrophone() {
    const meter = $('mic-level');
    if (!meter || !this.localStream || this.localStream.getAudioTracks().length === 0) return;
    try {
      this.audio?.context.close();
      const context = new AudioContext();
      const analyser = context.createAnalyser();
      analyser.fftSize = 512;
      context.createMediaStreamSource(this.localStream).connect(analyser);
      const samples = new Uint8Array(analyser.fftSize);
      this.audio = { context, analyser, samples };
      const draw = () => {
        if (!this.audio || this.audio.context !== context) return;
        analyser.getByteTimeDomainData(samples);
        let peak = 0;
        for (const value of samples) peak = Math.max(peak, Math.abs(value - 128));
        meter.value = Math.min(1, peak / 64);
        window.setTimeout(draw, 100);
      };
      draw();
    } catch {
      // No Web Audio: the level meter stays empty, the call does not need it.
    }
  }

  async checkConnection() {
    const hint = $('connection-hint');
    if (!hint) return;
    const times = [];
    try {
      for (let i = 0; i < 3; i += 1) {
        const started = performance.now();
        const response = await fetch('/healthz', { cache: 'no-store', credentials: 'same-origin' });
        await response.text();
        times.push(performance.now() - started);
      }
    } catch {
      say(hint, this.text.hintFailed);
      hint.classList.add('problem');
      return;
    }
    const ms = Math.round(median(times));
    const quality = ms < 150 ? this.text.hintGood : ms < 400 ? this.text.hintFair : this.text.hintPoor;
    let words = fill(quality, { ms });
    const downlink = navigator.connection?.downlink;
    if (typeof downlink === 'number' && downlink > 0) {
      const mbps = downlink.toLocaleString(document.documentElement.lang, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
      words += ` ${fill(this.text.hintBandwidth, { mbps })}`;
    }
    say(hint, words);
    hint.classList.toggle('problem', ms >= 400);
  }

  stopLocal() {
    this.localStream?.getTracks().forEach((track) => track.stop());
    this.localStream = null;
  }

  toggleTrack(kind, button) {
    const off = button.getAttribute('aria-pressed') !== 'true';
    button.setAttribute('aria-pressed', String(off));
    this.localStream?.getTracks().forEach((track) => {
      if (track.kind === kind) track.enabled = !off;
    });
  }

  // --- joining ------------------------------------------------------------------------------------

  join() {
    const accepted = $('rules-accept');
    if (accepted && !accepted.checked) {
      say($('rules-error'), this.text.acceptRules);
      show($('rules-error'));
      accepted.focus();
      return;
    }
    show($('rules-error'), false);
    if (this.serverNow() < this.opensAt) {
      say($('join-status'), fill(this.text.notOpenYet, { time: this.config.opensAtLabel }));
      return;
    }
    this.joinClickedAt = performance.now();
    this.firstFrameMs = null;
    this.endedLocallyAt = null;
    this.reconnectDelay = RECONNECT_FIRST_MS;
    document.body.classList.add('in-call');
    show($('before-call'), false);
    show($('ended'), false);
    show($('call'));
    this.watchFirstFrame();
    this.connect();
  }

  connect() {
    window.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.closePeer();
    this.state = this.state === 'reconnecting' ? 'reconnecting' : 'joining';
    say($('peer-status'), this.text.connecting);
    this.channel?.close();
    this.channel = new Channel(
      this.config.socket,
      {
        onOpen: () => this.channel.send({ type: 'hello', rules_accepted: true }),
        onMessage: (message) => this.onMessage(message),
        onClose: (code, reason, wanted) => this.onSocketClosed(code, wanted),
        onRoundTrip: (ms) => {
          this.socketRoundTrip = Math.round(ms);
        },
      },
      { keepAliveMs: KEEP_ALIVE_MS },
    );
    this.channel.open();
  }

  onMessage(message) {
    switch (message.type) {
      case 'welcome':
        return this.onWelcome(message);
      case 'answer':
        return this.onAnswer(message);
      case 'peer':
        return this.onPeer(message);
      case 'warning':
        return this.onWarning(message);
      case 'time':
        return this.onTime(message);
      case 'paused':
        return this.onPaused(message);
      case 'ended':
        return this.onEnded(message);
      case 'replaced':
        return this.onReplaced();
      case 'error':
        return this.onError(message);
      default:
        return undefined;
    }
  }

  async onWelcome(message) {
    if (message.server_time) this.offset = Date.parse(message.server_time) - Date.now();
    if (message.starts_at) this.startsAt = Date.parse(message.starts_at);
    if (message.ends_at) this.endsAt = Date.parse(message.ends_at);
    say($('peer-status'), message.peer_connected ? this.text.peerHere : this.text.waitingPeer);
    show($('reconnect-notice'), false);
    try {
      await this.offer();
    } catch (error) {
      this.showError(this.text.mediaFailed);
      this.scheduleReconnect();
    }
  }

  async offer() {
    const pc = new RTCPeerConnection({ iceServers: this.config.iceServers });
    this.pc = pc;
    const tracks = this.localStream ? this.localStream.getTracks() : [];
    for (const kind of ['audio', 'video']) {
      const track = tracks.find((t) => t.kind === kind);
      if (track) pc.addTransceiver(track, { direction: 'sendrecv', streams: [this.localStream] });
      else pc.addTransceiver(kind, { direction: 'sendrecv' });
    }
    pc.addEventListener('track', (event) => this.onTrack(event));
    pc.addEventListener('connectionstatechange', () => this.onPeerState(pc));
    const sdp = await gatheredOffer(pc);
    if (pc !== this.pc) return;
    this.channel.send({ type: 'offer', sdp });
  }

  async onAnswer(message) {
    if (!this.pc || this.pc.signalingState !== 'have-local-offer') return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp: message.sdp });
    this.state = 'connected';
    this.reconnectDelay = RECONNECT_FIRST_MS;
    show($('call-error'), false);
    window.clearInterval(this.statsTimer);
    this.statsTimer = window.setInterval(() => this.showQuality(), STATS_EVERY_MS);
  }

  onTrack(event) {
    const video = $('remote-video');
    if (!this.remoteStream) this.remoteStream = new MediaStream();
    this.remoteStream.getTracks().forEach((track) => {
      if (track.kind === event.track.kind) this.remoteStream.removeTrack(track);
    });
    this.remoteStream.addTrack(event.track);
    if (video && video.srcObject !== this.remoteStream) video.srcObject = this.remoteStream;
    video?.play().catch(() => {});
  }

  watchFirstFrame() {
    const video = $('remote-video');
    if (!video || typeof video.requestVideoFrameCallback !== 'function') return;
    const started = this.joinClickedAt;
    video.requestVideoFrameCallback(() => {
      if (started !== this.joinClickedAt) return;
      this.firstFrameMs = performance.now() - started;
      video.dataset.firstFrameMs = String(Math.round(this.firstFrameMs));
    });
  }

  onPeerState(pc) {
    if (pc !== this.pc) return;
    const state = pc.connectionState;
    if (state === 'connected') {
      window.clearTimeout(this.peerLostTimer);
      this.peerLostTimer = null;
      show($('reconnect-notice'), false);
    } else if (state === 'failed') {
      this.scheduleReconnect();
    } else if (state === 'disconnected' && this.peerLostTimer === null) {
      // ICE often recovers by itself from a short loss; give it a moment before starting over.
      this.peerLostTimer = window.setTimeout(() => {
        this.peerLostTimer = null;
        if (pc === this.pc && pc.connectionState !== 'connected') this.scheduleReconnect();
      }, PEER_LOST_MS);
    }
  }

  onPeer(message) {
    if (message.side === this.config.side) return;
    say($('peer-status'), message.state === 'joined' ? this.text.peerJoined : this.text.peerLeft);
  }

  onWarning(message) {
    const banner = $('warning-banner');
    say($('warning-text'), message.text);
    const at = message.at ? new Date(message.at) : new Date(this.serverNow());
    say($('warning-time'), at.toLocaleTimeString(document.documentElement.lang, { hour: '2-digit', minute: '2-digit' }));
    show(banner);
  }

  onTime(message) {
    const left = Number(message.minutes_left);
    const text = left === 1 ? this.text.oneLeft : left === 5 ? this.text.fiveLeft : fill(this.text.minutesLeft, { n: left });
    say($('time-notice'), text);
    show($('time-notice'));
  }

  onPaused(message) {
    const mine = message.side === this.config.side;
    const notice = mine ? $('paused-mine') : $('paused-theirs');
    show(notice, Boolean(message.paused));
    if (!mine) $('remote')?.classList.toggle('paused', Boolean(message.paused));
  }

  onEnded(message) {
    const failed = message.outcome === 'failed';
    this.finish('ended', failed ? this.text.endedFailed : this.text.endedCompleted, message.message || '');
    const status = $('visit-status');
    const outcome = { completed: 'completed', terminated: 'terminated', failed: 'failed' }[message.outcome];
    if (status && outcome) {
      status.className = `tag status-${outcome}`;
      status.textContent = this.text.statuses[outcome];
    }
    const ended = $('ended');
    if (ended) {
      ended.dataset.outcome = message.outcome || '';
      ended.dataset.reason = message.reason || '';
    }
  }

  onReplaced() {
    this.finish('replaced', this.text.replacedTitle, this.text.replaced);
  }

  onError(message) {
    this.showError(message.message || this.text.errorGeneric);
    if (message.code) $('call-error')?.setAttribute('data-code', message.code);
    // The media could not be set up this time (the engine was busy or restarting): start over.
    if (RETRY_CODES.has(message.code) && this.state !== 'check') {
      this.channel?.close();
      this.scheduleReconnect();
    }
  }

  showError(text) {
    const box = $('call-error');
    say(box, text);
    show(box);
  }

  onSocketClosed(code, wanted) {
    if (wanted || ['ended', 'replaced', 'left', 'refused'].includes(this.state)) return;
    if (FINAL_CLOSE_CODES.has(code)) {
      // Refused (access, window, state) or replaced: the error message already said why.
      const text = $('call-error')?.textContent || this.text.errorGeneric;
      this.finish(code === 4000 ? 'replaced' : 'refused', code === 4000 ? this.text.replacedTitle : this.text.refusedTitle, text);
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    if (['ended', 'replaced', 'left', 'refused'].includes(this.state) || this.reconnectTimer !== null) return;
    if (this.serverNow() >= this.endsAt) {
      this.finish('ended', this.text.endedCompleted, this.text.timeOver);
      return;
    }
    this.state = 'reconnecting';
    this.closePeer();
    show($('reconnect-notice'));
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
    this.reconnectTimer = window.setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  leave() {
    this.channel?.send({ type: 'leave' });
    this.finish('left', this.text.leftTitle, fill(this.text.left, { time: this.config.endsAtLabel }));
    show($('rejoin'), this.serverNow() < this.endsAt);
  }

  finish(state, title, detail) {
    this.state = state;
    window.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    window.clearInterval(this.statsTimer);
    this.closePeer();
    this.channel?.close();
    this.channel = null;
    if (state !== 'left') {
      this.stopLocal();
      this.audio?.context.close();
      this.audio = null;
    }
    document.body.classList.remove('in-call');
    show($('call'), false);
    show($('reconnect-notice'), false);
    say($('ended-title'), title);
    say($('ended-detail'), detail);
    show($('rejoin'), false);
    show($('ended'));
    $('ended-title')?.focus();
  }

  closePeer() {
    window.clearTimeout(this.peerLostTimer);
    this.peerLostTimer = null;
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
    this.remoteStream = null;
    const video = $('remote-video');
    if (video) video.srcObject = null;
  }

  // --- the clock and the connection's quality -----------------------------------------------------

  tick() {
    const now = this.serverNow();
    const countdown = $('countdown');
    if (now < this.startsAt) {
      say(countdown, fill(this.text.startsIn, { time: clockText(this.startsAt - now) }));
    } else {
      say(countdown, fill(this.text.timeLeft, { time: clockText(this.endsAt - now) }));
    }
    const joinButton = $('join');
    if (joinButton && this.state === 'check') {
      const open = now >= this.opensAt && now < this.endsAt;
      joinButton.disabled = !open;
      say($('join-status'), now >= this.endsAt ? this.text.over : open ? '' : fill(this.text.notOpenYet, { time: this.config.opensAtLabel }));
    }
    // The server ends the visit at its end; if its word never comes (the network is gone), end here.
    if (['connected', 'joining', 'reconnecting'].includes(this.state) && now >= this.endsAt) {
      this.endedLocallyAt ??= now;
      if (now - this.endedLocallyAt >= END_GRACE_MS) this.finish('ended', this.text.endedCompleted, this.text.timeOver);
    }
  }

  async showQuality() {
    const pc = this.pc;
    if (!pc) return;
    try {
      const facts = await connectionFacts(pc);
      const parts = [];
      const roundTrip = facts.roundTripMs ?? this.socketRoundTrip;
      if (typeof roundTrip === 'number') parts.push(fill(this.text.roundTrip, { ms: Math.round(roundTrip) }));
      if (typeof facts.framesPerSecond === 'number') parts.push(fill(this.text.frameRate, { fps: Math.round(facts.framesPerSecond) }));
      say($('quality'), parts.join(' · '));
    } catch {
      // Statistics are a courtesy; a closed connection has none.
    }
  }
}

const root = document.querySelector('[data-live-call]');
export const activeCall = root ? new Call(readConfig('live-config')) : null;
activeCall?.start();
