// The web phone: SIP.js (npm, its lib/ served under /console/vendor/sip.js/) over a SIP WebSocket.
// The password stays in this page's memory: nothing is stored or sent to the controller.
import { Inviter, Registerer, RegistererState, SessionState, UserAgent } from "/console/vendor/sip.js/index.js";

const $ = (id) => document.getElementById(id);
const media = { constraints: { audio: true, video: false } };
const phone = { ua: null, registerer: null, session: null, domain: "", callState: "idle", dtmfSent: "" };
window.fsfarmPhone = phone; // tests and the curious read the state and media statistics here

function show(id, state, text) {
  $(id).dataset.state = state;
  $(id).textContent = text;
}

function buttons() {
  const registered = phone.registerer && phone.registerer.state === RegistererState.Registered;
  const s = phone.session;
  const ringing = s && !(s instanceof Inviter) && s.state === SessionState.Initial;
  const up = s && s.state === SessionState.Established;
  $("phone-call").disabled = !registered || !!s;
  $("phone-answer").disabled = !ringing;
  $("phone-hangup").disabled = !s;
  for (const key of document.querySelectorAll("#phone-keypad button")) key.disabled = !up;
}

function playRemote(session) {
  const pc = session.sessionDescriptionHandler.peerConnection;
  const stream = new MediaStream();
  for (const receiver of pc.getReceivers()) if (receiver.track) stream.addTrack(receiver.track);
  $("phone-audio").srcObject = stream;
}

function follow(session, peer) {
  phone.session = session;
  $("call-peer").textContent = peer;
  session.stateChange.addListener((state) => {
    const words = {
      [SessionState.Establishing]: ["establishing", session instanceof Inviter ? "calling…" : "answering…"],
      [SessionState.Established]: ["established", "in call"],
      [SessionState.Terminating]: ["terminating", "hanging up…"],
      [SessionState.Terminated]: ["terminated", "call ended"],
    }[state];
    if (words) {
      phone.callState = words[0];
      show("call-state", ...words);
    }
    if (state === SessionState.Established) playRemote(session);
    if (state === SessionState.Terminated) {
      phone.session = null;
      $("phone-audio").srcObject = null;
    }
    buttons();
  });
  buttons();
}

async function register(event) {
  event.preventDefault();
  const login = $("phone-user").value.trim();
  const [extension, domain] = login.split("@");
  if (!extension || !domain) {
    show("phone-status", "error", "the user is extension@domain, e.g. 1004@acme.example");
    return;
  }
  if (phone.ua) await phone.ua.stop();
  phone.domain = domain;
  show("phone-status", "connecting", "connecting…");
  phone.ua = new UserAgent({
    uri: UserAgent.makeURI(`sip:${extension}@${domain}`),
    authorizationUsername: extension,
    authorizationPassword: $("phone-password").value,
    transportOptions: { server: $("phone-ws").value.trim() },
    logLevel: "warn",
    delegate: {
      onInvite(invitation) {
        if (phone.session) {
          invitation.reject({ statusCode: 486 });
          return;
        }
        follow(invitation, invitation.remoteIdentity.uri.user || "");
        phone.callState = "ringing";
        show("call-state", "ringing", "incoming call");
        buttons();
      },
      onDisconnect() {
        show("phone-status", "disconnected", "disconnected");
        buttons();
      },
    },
  });
  try {
    await phone.ua.start();
  } catch (error) {
    show("phone-status", "error", `cannot reach ${$("phone-ws").value}: ${error.message}`);
    return;
  }
  phone.registerer = new Registerer(phone.ua, { expires: 300 });
  phone.registerer.stateChange.addListener((state) => {
    if (state === RegistererState.Registered) show("phone-status", "registered", `registered as ${login}`);
    if (state === RegistererState.Unregistered) show("phone-status", "unregistered", "not registered");
    buttons();
  });
  await phone.registerer.register({
    requestDelegate: {
      onReject(response) {
        show("phone-status", "error", `refused: ${response.message.statusCode} ${response.message.reasonPhrase}`);
      },
    },
  });
}

async function call(event) {
  event.preventDefault();
  const target = $("phone-target").value.trim();
  const uri = UserAgent.makeURI(target.includes("@") ? `sip:${target}` : `sip:${target}@${phone.domain}`);
  if (!target || !uri) return;
  const inviter = new Inviter(phone.ua, uri, { sessionDescriptionHandlerOptions: media });
  follow(inviter, target);
  phone.callState = "calling";
  show("call-state", "calling", "calling…");
  await inviter.invite({
    requestDelegate: {
      onReject(response) {
        show("call-state", "rejected", `${response.message.statusCode} ${response.message.reasonPhrase}`);
      },
    },
  });
}

function hangup() {
  const s = phone.session;
  if (!s) return;
  if (s.state === SessionState.Established) s.bye();
  else if (s instanceof Inviter) s.cancel();
  else s.reject();
}

function sendDigit(event) {
  const digit = event.target.dataset.digit;
  // RFC 2833 telephone-events in the media stream, as desk phones send them.
  if (digit && phone.session && phone.session.sessionDescriptionHandler.sendDtmf(digit)) {
    phone.dtmfSent += digit;
    $("phone-dtmf-sent").textContent = `sent: ${phone.dtmfSent}`;
  }
}

// Inbound audio so far (packets, energy): what the page hears, for tests and for troubleshooting.
phone.inboundAudio = async () => {
  const pc = phone.session && phone.session.sessionDescriptionHandler && phone.session.sessionDescriptionHandler.peerConnection;
  if (!pc) return { packets: 0, energy: 0 };
  let packets = 0;
  let energy = 0;
  (await pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "audio") {
      packets += report.packetsReceived || 0;
      energy += report.totalAudioEnergy || 0;
    }
  });
  return { packets, energy };
};

$("phone-login").addEventListener("submit", register);
$("phone-dial").addEventListener("submit", call);
$("phone-answer").addEventListener("click", () => phone.session.accept({ sessionDescriptionHandlerOptions: media }));
$("phone-hangup").addEventListener("click", hangup);
$("phone-keypad").addEventListener("click", sendDigit);
