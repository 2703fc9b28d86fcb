// The recognition page: stream the microphone over /ws/asr with live partial text, or upload a file.
'use strict';

const SAMPLE_RATE = 16000;
const CHUNK_MS = 160;
const $ = (id) => document.getElementById(id);
let session = null;

function setStatus(element, text, kind = '') {
  element.textContent = text;
  element.className = `status ${kind}`;
}

function setState(state) {
  document.body.dataset.state = state; // idle | recording | finishing | done | error (tests read it)
}

const seconds = (ms) => (ms / 1000).toFixed(2);

// Show a result with each timed character (word for English) as a span: hovering it shows its times.
// The text stays exactly the server's (separators such as "，" between segments are plain text).
function showResult(element, text, timestamps) {
  element.textContent = '';
  if (!timestamps) {
    element.textContent = text;
    return;
  }
  let cursor = 0;
  for (const unit of timestamps) {
    const at = text.indexOf(unit.text, cursor);
    if (at < 0) continue;
    if (at > cursor) element.append(text.slice(cursor, at));
    const span = document.createElement('span');
    span.className = 'unit';
    span.textContent = unit.text;
    span.dataset.startMs = unit.start_ms;
    span.dataset.endMs = unit.end_ms;
    span.title = `${seconds(unit.start_ms)} s – ${seconds(unit.end_ms)} s`;
    element.append(span);
    cursor = at + unit.text.length;
  }
  if (cursor < text.length) element.append(text.slice(cursor));
}

function showHoveredTimes(event) {
  const span = event.target.closest('span.unit');
  if (!span) return;
  const line = $(event.currentTarget.dataset.times);
  line.textContent = `${span.textContent}: ${seconds(span.dataset.startMs)} s – ${seconds(span.dataset.endMs)} s`;
}

function wavBlob(chunks) {
  const samples = chunks.reduce((n, chunk) => n + chunk.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * samples));
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  view.setUint32(4, 36 + 2 * samples, true);
  text(8, 'WAVE');
  text(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, SAMPLE_RATE, true);
  view.setUint32(28, 2 * SAMPLE_RATE, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, 'data');
  view.setUint32(40, 2 * samples, true);
  let offset = 44;
  for (const chunk of chunks) {
    for (const sample of chunk) {
      view.setInt16(offset, sample, true);
      offset += 2;
    }
  }
  return new Blob([view.buffer], { type: 'audio/wav' });
}

async function openAudio(media) {
  // Chromium resamples the microphone into a 16 kHz context itself; Firefox cannot connect a
  // microphone to a context of another rate, so fall back to the device rate (the worklet resamples).
  let context = new AudioContext({ sampleRate: SAMPLE_RATE });
  let source;
  try {
    source = context.createMediaStreamSource(media);
  } catch (err) {
    await context.close();
    context = new AudioContext();
    source = context.createMediaStreamSource(media);
  }
  await context.audioWorklet.addModule('/static/pcm-worklet.js');
  const encoder = new AudioWorkletNode(context, 'pcm-encoder', {
    processorOptions: { targetRate: SAMPLE_RATE, chunkSamples: (SAMPLE_RATE * CHUNK_MS) / 1000 },
  });
  return { context, source, encoder };
}

function openSocket() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}/ws/asr${location.search}`);
  socket.binaryType = 'arraybuffer';
  return new Promise((resolve, reject) => {
    socket.onopen = () => {
      // start message: answers carry the times; the final result is biased towards the hotwords
      const start = { timestamps: true };
      if ($('hotwords').value.trim()) start.hotwords = $('hotwords').value.trim();
      socket.send(JSON.stringify(start));
      resolve(socket);
    };
    socket.onerror = () => reject(new Error('无法连接服务器 (cannot connect to the server)'));
  });
}

function fail(message) {
  setStatus($('record-status'), message, 'error');
  setState('error');
  if (session) stopAudio(session);
  session = null;
  $('record').disabled = false;
  $('stop').disabled = true;
}

function stopAudio(s) {
  s.media.getTracks().forEach((track) => track.stop());
  s.source.disconnect();
  s.encoder.disconnect();
  s.context.close();
}

async function startRecording() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fail('浏览器只允许 HTTPS 或 localhost 页面使用麦克风 (the microphone needs HTTPS or localhost)');
    return;
  }
  $('record').disabled = true;
  $('partial').textContent = '';
  $('final').textContent = '';
  $('final-times').textContent = '';
  $('record-score').textContent = '';
  document.body.dataset.partials = '0';
  try {
    const media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const socket = await openSocket();
    const audio = await openAudio(media);
    session = { media, socket, chunks: [], ...audio };
  } catch (err) {
    fail(`录音失败 (cannot record): ${err.message}`);
    return;
  }
  const s = session;
  s.socket.onmessage = (event) => onAnswer(s, JSON.parse(event.data));
  s.socket.onclose = () => {
    if (session === s) fail('连接已断开 (connection closed)');
  };
  s.encoder.port.onmessage = (event) => {
    if (event.data === 'flushed') {
      stopAudio(s);
      s.socket.send(JSON.stringify({ end: true }));
      return;
    }
    s.chunks.push(new Int16Array(event.data));
    s.socket.send(event.data);
  };
  s.source.connect(s.encoder);
  s.encoder.connect(s.context.destination); // keeps the worklet running; it outputs silence
  $('stop').disabled = false;
  setStatus($('record-status'), '正在录音… (recording)', 'recording');
  setState('recording');
}

function stopRecording() {
  if (!session) return;
  $('stop').disabled = true;
  setStatus($('record-status'), '识别中… (finishing)');
  setState('finishing');
  session.encoder.port.postMessage('flush');
}

function onAnswer(s, answer) {
  if (answer.code !== 0) {
    fail(`错误 (error) ${answer.code}: ${answer.msg}`);
    return;
  }
  if (!answer.is_end) {
    showResult($('partial'), answer.result, answer.timestamps);
    document.body.dataset.partials = String(Number(document.body.dataset.partials) + 1);
    return;
  }
  session = null;
  s.socket.close();
  showResult($('final'), answer.result, answer.timestamps);
  $('record-score').textContent = `得分 (score): ${answer.score}`;
  $('playback').src = URL.createObjectURL(wavBlob(s.chunks));
  setStatus($('record-status'), '完成 (done)');
  setState('done');
  $('record').disabled = false;
}

async function uploadFile(event) {
  event.preventDefault();
  const file = $('file').files[0];
  if (!file) {
    setStatus($('upload-status'), '请选择音频文件 (choose an audio file)', 'error');
    return;
  }
  const body = new FormData();
  body.append('audio', file);
  body.append('timestamps', 'true');
  if ($('hotwords').value.trim()) body.append('hotwords', $('hotwords').value.trim());
  const url = ($('long-audio').checked ? '/recognition_long_audio' : '/recognition') + location.search;  // ?token=…
  $('upload').disabled = true;
  $('upload-result').textContent = '';
  $('upload-times').textContent = '';
  $('upload-score').textContent = '';
  setStatus($('upload-status'), '识别中… (recognizing)');
  try {
    const answer = await (await fetch(url, { method: 'POST', body })).json();
    if (answer.code !== 0) throw new Error(`${answer.code}: ${answer.msg}`);
    showResult($('upload-result'), answer.result, answer.timestamps);
    $('upload-score').textContent = `得分 (score): ${answer.score}`;
    setStatus($('upload-status'), '完成 (done)');
    document.body.dataset.upload = 'done';
  } catch (err) {
    setStatus($('upload-status'), `错误 (error) ${err.message}`, 'error');
    document.body.dataset.upload = 'error';
  } finally {
    $('upload').disabled = false;
  }
}

for (const id of ['partial', 'final', 'upload-result']) $(id).addEventListener('mouseover', showHoveredTimes);
$('record').addEventListener('click', startRecording);
$('stop').addEventListener('click', stopRecording);
$('upload-form').addEventListener('submit', uploadFile);
$('file').addEventListener('change', () => {
  const file = $('file').files[0];
  if (file) $('upload-player').src = URL.createObjectURL(file);
});
setState('idle');
