import type { RealtimeSession } from '../ai/realtime.js';
import { MediaSession } from '../media/media-session.js';
import type { PortLease } from '../media/port-pool.js';
import type { NegotiatedMedia } from '../media/sdp.js';
import type { SipDialog } from '../sip/sip-dialog.js';
import { AudioBridge } from './audio-bridge.js';
import type { Call } from './call.js';
import { wireCallFeatures } from './call-features.js';
import type { EarlyAudio } from './early-audio.js';
import type { CallSetupDeps } from './inbound-call.js';

/**
 * The moment an answered call goes live, in either direction: media starts on the leased port (the
 * call owns it from here), agent audio held while ringing plays first, tools and keypad are wired,
 * and the call becomes active.
 */
export function goLive(
  call: Call,
  /** The leased port, or media already started by early media (183), which follows the answer's SDP. */
  mediaOrLease: MediaSession | PortLease,
  negotiated: NegotiatedMedia,
  session: RealtimeSession,
  early: EarlyAudio,
  dialog: SipDialog,
  deps: CallSetupDeps,
): MediaSession {
  let media: MediaSession;
  if (mediaOrLease instanceof MediaSession) {
    media = mediaOrLease;
    media.update(negotiated);
    media.restartTimeouts();
  } else {
    media = new MediaSession(mediaOrLease, negotiated, deps.mediaClock, deps.clock, call.log);
    call.attachMedia(media);
  }
  const held = early.release();
  for (const entry of held.transcripts) call.addTranscript(entry);
  const bridge = new AudioBridge(
    media,
    session,
    {
      transcript: (entry) => call.addTranscript(entry),
      providerLost: (reason) => void call.end({ cause: 'provider-failed', detail: reason }),
    },
    deps.clock,
    call.log,
    held.audio,
  );
  call.attachBridge(bridge);
  wireCallFeatures(call, session, media, dialog, deps.transferrer, deps.dtmf, deps.operatorTools);
  call.transition('active');
  call.report({ type: 'answered' });
  call.log.info(
    {
      codec: negotiated.codec,
      rtpPort: media.port,
      remote: `${negotiated.remoteAddress}:${negotiated.remotePort}`,
    },
    'call answered',
  );
  return media;
}
