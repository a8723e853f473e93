// The WebRTC side of signalling: offers with every ICE candidate gathered in the SDP (the server takes
// no trickled candidates), and the few statistics the pages show.

const GATHERING_LIMIT_MS = 5000;

/** Resolves when ICE gathering is complete, or after `limitMs` with whatever was gathered by then. */
export function gatheringComplete(pc, limitMs = GATHERING_LIMIT_MS) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      pc.removeEventListener('icegatheringstatechange', check);
      window.clearTimeout(timer);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') finish();
    };
    const timer = window.setTimeout(finish, limitMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** Creates the offer, sets it and returns its SDP once the candidates are in it. */
export async function gatheredOffer(pc) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await gatheringComplete(pc);
  return pc.localDescription.sdp;
}

/** Round trip of the selected candidate pair (ms), and decoded video frames per second and in all. */
export async function connectionFacts(pc) {
  const facts = { roundTripMs: null, framesPerSecond: null, framesDecoded: 0, outgoingKbps: null };
  const report = await pc.getStats();
  let pairId = null;
  report.forEach((stat) => {
    if (stat.type === 'transport' && stat.selectedCandidatePairId) pairId = stat.selectedCandidatePairId;
  });
  report.forEach((stat) => {
    const selected = stat.id === pairId || (pairId === null && stat.nominated && stat.state === 'succeeded');
    if (stat.type === 'candidate-pair' && selected) {
      if (typeof stat.currentRoundTripTime === 'number') facts.roundTripMs = stat.currentRoundTripTime * 1000;
      if (typeof stat.availableOutgoingBitrate === 'number') {
        facts.outgoingKbps = stat.availableOutgoingBitrate / 1000;
      }
    }
    if (stat.type === 'inbound-rtp' && stat.kind === 'video') {
      facts.framesDecoded += stat.framesDecoded || 0;
      if (typeof stat.framesPerSecond === 'number') {
        facts.framesPerSecond = Math.max(facts.framesPerSecond || 0, stat.framesPerSecond);
      }
    }
  });
  return facts;
}
