"""infer_server.py's work: the recognition page, HTTP file recognition and WebSocket streaming.

FastAPI on uvicorn. Every model and decoder call runs on one worker thread (``Recognizer``), so
the event loop keeps serving pages, uploads and other streams while a model runs: paddle's
loaded static models are not thread-safe (two threads calling one fail with "Another thread is
waiting"), so one thread is also the safe number. Uploads are decoded in memory and never
written under a client's name (PPASR saved them as ``save_path/<client filename>``: path
traversal).

WebSocket protocol (``/ws/asr``): binary frames of 16 kHz mono 16-bit little-endian PCM, any
size; each binary frame gets exactly one answer ``{"code": 0, "is_end": false, "result":
<text so far>}``. The text frame ``{"end": true}`` ends the utterance: ``{"code": 0, "is_end":
true, "result": <text>, "score": <number>}``; the socket then stays open for the next utterance.
The text frame ``{"timestamps": true}`` (a start message, before or between utterances) adds
``"timestamps": [{"text", "start_ms", "end_ms"}, …]`` to the answers from then on (``false`` stops them);
HTTP clients ask with the form field or query parameter ``timestamps=true``. ``"hotwords"`` (a comma-separated
string or a list) in a start message, or the HTTP field ``hotwords``, biases the final results (beam search).
Errors are ``{"code": <non-zero>, "msg": <reason>}`` followed by a close.

Every resource a client can make the server spend is capped (README "安全 / Security and limits"):
decoded samples, channels and sample rate of an upload, uploads in flight, connections, the time
to send headers and body, WebSocket frame size (no compression), messages and bytes waiting per
stream, and streams that send no audio. Browsers' requests from other sites are refused unless
``--allowed_origins`` names them.
"""
from __future__ import annotations

import asyncio
import collections
import hmac
import io
import ipaddress
import json
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlsplit

import h11
import numpy as np
import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from ppasr.data.audio import AudioError, AudioTooLarge, DecodeLimits, read_untrusted_audio
from ppasr.decode.beam_search import BeamSearchDecoder
from ppasr.decode.greedy import IncrementalGreedyDecoder
from ppasr.decode.hotwords import HotwordGraph, compile_hotwords, parse_hotwords
from ppasr.decode.options import DecodeOptions
from ppasr.decode.text_decoder import Decoder, build_decoder
from ppasr.logger import logger, setup_logging
from ppasr.serve.infer import (ModelSource, Predictor, Transcript, joined_result, transcribe_segments,
                               transcript)
from ppasr.utils import set_paddle_threads

STATIC_DIR = Path(__file__).resolve().parent / "static"
PCM_SAMPLE_RATE = 16000
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the audio bytes

# error codes of the JSON answers ({"code": 0} is success, as PPASR)
AUDIO_UNREADABLE = 1  # PPASR's "audio read fail!"
TOO_LARGE = 2
NO_AUDIO = 3  # PPASR's "audio is None!"
BAD_MESSAGE = 4
BUSY = 5
INTERNAL_ERROR = 6
FORBIDDEN = 7  # a foreign page's Origin, or a missing/wrong --token
IDLE = 8  # a stream that sent no audio for --stream_idle_seconds

HOTWORD_GRAPHS_KEPT = 32  # compiled hotword lists a server remembers
WS_MAX_FRAME_BYTES = 1024 * 1024  # 32 s of PCM in one frame; uvicorn's default was 16 MiB
INBOX_MAX_MESSAGES = 256  # per stream, besides the byte budget
MESSAGE_OVERHEAD = 256  # bytes a queued message costs besides its payload (zero-byte frames are not free)
FD_RESERVE = 64  # descriptors kept free of connections for the model, log files and threads

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the server."""

    max_upload_bytes: int
    max_audio_seconds: float  # per upload and per streamed utterance
    max_streams: int  # WebSocket streams open at once
    max_uploads: int  # HTTP recognition requests being read, queued or decoded at once
    max_channels: int
    max_sample_rate: int
    max_decoded_samples: int  # frames x channels of one upload
    stream_idle_seconds: float  # a stream that sends no audio that long is closed
    allowed_origins: tuple[str, ...]  # besides the same origin; "*" = every origin (PPASR)
    token: str | None
    max_hotwords: int  # per request, besides the server's own
    max_hotword_chars: int

    def decode_limits(self) -> DecodeLimits:
        return DecodeLimits(self.max_channels, self.max_sample_rate, self.max_decoded_samples, self.max_audio_seconds)


@dataclass(frozen=True)
class ServeOptions:
    """infer_server.py's flags besides the model (``ModelSource``) and the decoder (``DecodeOptions``);
    their defaults live with the flags."""

    host: str
    port: int
    to_an: bool
    vad: str  # splits /recognition_long_audio uploads
    max_upload_mb: float
    max_audio_seconds: float
    max_streams: int
    max_uploads: int
    max_channels: int
    max_sample_rate: int
    max_decoded_samples: int
    max_connections: int
    header_timeout: float
    body_timeout: float
    stream_idle_seconds: float
    allowed_origins: str  # comma-separated
    token: str | None
    max_hotwords: int
    max_hotword_chars: int

    def limits(self) -> Limits:
        origins = tuple(origin.strip() for origin in self.allowed_origins.split(",") if origin.strip())
        return Limits(max_upload_bytes=int(self.max_upload_mb * 1024 * 1024), max_audio_seconds=self.max_audio_seconds,
                      max_streams=self.max_streams, max_uploads=self.max_uploads, max_channels=self.max_channels,
                      max_sample_rate=self.max_sample_rate, max_decoded_samples=self.max_decoded_samples,
                      stream_idle_seconds=self.stream_idle_seconds, allowed_origins=origins, token=self.token,
                      max_hotwords=self.max_hotwords, max_hotword_chars=self.max_hotword_chars)


class ClientError(Exception):
    """A request the server refuses: answered as ``{"code", "msg"}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


class Recognizer:
    """The predictor and decoder behind one worker thread; ``run`` calls them off the event loop."""

    def __init__(self, predictor: Predictor, decoder: Decoder, to_an: bool, vad: str, limits: Limits):
        self.predictor = predictor
        self.decoder = decoder
        self.to_an = to_an
        self.vad = vad
        self.limits = limits
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ppasr-model")
        self._graphs: collections.OrderedDict[tuple, HotwordGraph | None] = collections.OrderedDict()

    async def run(self, fn: Callable[..., T], *args) -> T:
        """Run ``fn(*args)`` on the model thread and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    def hotwords(self, requested: str | list | None) -> HotwordGraph | None:
        """The graph of a request's hotwords (a comma-separated string or a list of strings) together with
        the server's own; None when the request names none (the decoder's own apply). Capped in count and
        length; the last graphs are kept for clients that send the same list again."""
        if requested is None:
            return None
        if isinstance(requested, str):
            words = [word for word, _ in parse_hotwords(requested, 0.0)]
        elif isinstance(requested, list) and all(isinstance(word, str) for word in requested):
            words = [word.strip() for word in requested if word.strip()]
        else:
            raise ClientError(BAD_MESSAGE, "hotwords must be a comma-separated string or a list of strings")
        if not words:
            return None
        if not isinstance(self.decoder, BeamSearchDecoder):
            raise ClientError(BAD_MESSAGE, "hotwords need a server started with --decoder=ctc_beam_search")
        key = tuple(words)
        if key in self._graphs:
            self._graphs.move_to_end(key)
            return self._graphs[key]
        weight = self.decoder.hotword_weight
        try:
            own = compile_hotwords([(word, weight) for word in words], self.predictor.vocabulary,
                                   self.limits.max_hotwords, self.limits.max_hotword_chars, warn=False)
        except ValueError as e:
            raise ClientError(BAD_MESSAGE, str(e)) from None
        graph = None  # none of them can be spelt: the server's own apply
        if own is not None:
            graph = compile_hotwords(self.decoder.hotwords + [(word, weight) for word in words],
                                     self.predictor.vocabulary, warn=False)
        self._graphs[key] = graph
        if len(self._graphs) > HOTWORD_GRAPHS_KEPT:
            self._graphs.popitem(last=False)
        return graph

    def recognize_file(self, data: bytes, long_audio: bool, hotwords: HotwordGraph | None = None) -> list[Transcript]:
        """The transcripts of an uploaded file (any soundfile format, rate and channels): one, or one per
        speech segment of long audio."""
        try:
            samples = read_untrusted_audio(io.BytesIO(data), self.predictor.feature_config.sample_rate,
                                           self.limits.decode_limits())
        except AudioTooLarge as e:
            raise ClientError(TOO_LARGE, str(e), 413) from None
        return transcribe_segments(self.predictor, samples, self.decoder, self.to_an, long_audio, self.vad,
                                   hotwords)

    def open_utterance(self) -> StreamedUtterance:
        return StreamedUtterance(self)


class StreamedUtterance:
    """One streamed utterance: the model stream (GRU state carried chunk to chunk) for partial
    results, and the samples for the final result.

    The final result is ``/recognition``'s computation over the whole utterance: a stream must fix
    its loudness gain from its first second, while a whole clip is normalised by its own level (as
    PPASR trained), so frames streamed with the early gain can differ from the clip's. One pass
    at the end makes the final text equal to what ``/recognition`` returns for the same audio.
    """

    def __init__(self, recognizer: Recognizer):
        self._recognizer = recognizer
        self._stream = recognizer.predictor.new_stream()
        self._samples: list[np.ndarray] = []
        self._partial = IncrementalGreedyDecoder(recognizer.predictor.vocabulary)
        self._result = transcript(recognizer.predictor, self._partial.hypothesis, recognizer.to_an)
        self.samples = 0

    def accept(self, pcm: bytes) -> Transcript:
        """Add 16-bit PCM; return the transcript so far (greedy over the frames the stream has computed)."""
        if len(pcm) < 2:  # empty frames add nothing: a million of them must not grow ``_samples``
            return self._result
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self.samples += samples.shape[0]
        self._samples.append(samples)
        self._result = transcript(self._recognizer.predictor, self._partial.extend(self._stream.accept(samples)),
                                  self._recognizer.to_an)
        return self._result

    def finish(self, hotwords: HotwordGraph | None = None) -> list[Transcript]:
        """The final transcript of the whole utterance (none for audio too short to decode)."""
        samples = np.concatenate(self._samples) if self._samples else np.zeros(0, dtype=np.float32)
        self._samples = []
        return transcribe_segments(self._recognizer.predictor, samples, self._recognizer.decoder,
                                   self._recognizer.to_an, long_audio=False, hotwords=hotwords)


def error_body(code: int, msg: str) -> dict:
    return {"code": code, "msg": msg}


def timestamps_json(results: list[Transcript]) -> list[dict]:
    """The ``timestamps`` of an answer: each character (word for English) with its times in the audio."""
    return [{"text": t.text, "start_ms": t.start_ms, "end_ms": t.end_ms} for r in results for t in r.timestamps]


def is_true(value: str | None) -> bool:
    """A form field or query parameter that asks for something (``timestamps=true``)."""
    return value is not None and value.strip().lower() in ("1", "true", "yes")


async def read_upload(request: Request, max_bytes: int) -> tuple[bytes, dict[str, str]]:
    """The bytes of multipart field ``audio`` and the form's text fields; the body is read in memory up to
    the size limit."""
    too_large = ClientError(TOO_LARGE, f"upload larger than {max_bytes // (1024 * 1024)} MB (--max_upload_mb)", 413)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        if int(declared) <= 2 * max_bytes:
            # read and drop a body that is only somewhat too large: a client still sending it would
            # otherwise see a reset connection instead of the 413 (larger ones are refused at once)
            async for _ in request.stream():
                pass
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes + MULTIPART_OVERHEAD:
            raise too_large

    async def replay() -> dict:
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
    except MultiPartException as e:
        raise ClientError(NO_AUDIO, f"malformed multipart body ({e.message})") from None
    except HTTPException as e:  # Starlette's own parse errors (e.g. a part without Content-Disposition)
        raise ClientError(NO_AUDIO, f"malformed multipart body ({e.detail})") from None
    try:
        upload = form.get("audio")
        if not isinstance(upload, UploadFile):
            raise ClientError(NO_AUDIO, "no file in multipart/form-data field 'audio'")
        data = await upload.read()
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
    finally:
        await form.close()
    if not data:
        raise ClientError(NO_AUDIO, "audio is empty")
    if len(data) > max_bytes:
        raise too_large
    return data, fields


def create_app(recognizer: Recognizer) -> FastAPI:
    """The web application: page, file recognition endpoints and the streaming WebSocket."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        recognizer.close()

    limits = recognizer.limits
    app = FastAPI(title="ppasr", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if limits.allowed_origins:  # PPASR's Flask app answered every origin (flask_cors); now only when asked
        app.add_middleware(CORSMiddleware, allow_origins=list(limits.allowed_origins), allow_methods=["*"],
                           allow_headers=["*"])
    open_streams = 0
    uploads = 0
    warn_refused = RateLimitedWarning()

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    async def recognize(request: Request, long_audio: bool) -> JSONResponse:
        nonlocal uploads
        start = time.time()
        refusal = refuse_request(request.headers, request.query_params.get("token"), limits)
        if refusal:
            return JSONResponse(error_body(FORBIDDEN, refusal), status_code=403)
        if uploads >= limits.max_uploads:
            return JSONResponse(error_body(BUSY, f"server busy: {uploads} uploads in progress (--max_uploads); "
                                                 f"try again later"), status_code=503, headers={"Retry-After": "1"})
        uploads += 1
        try:
            data, fields = await read_upload(request, limits.max_upload_bytes)
            hotwords = recognizer.hotwords(fields.get("hotwords", request.query_params.get("hotwords")))
            results = await recognizer.run(recognizer.recognize_file, data, long_audio, hotwords)
        except ClientError as e:
            return JSONResponse(error_body(e.code, e.msg), status_code=e.status)
        except ClientDisconnect:  # the client left (or was dropped by --body_timeout) mid-body
            return JSONResponse(error_body(NO_AUDIO, "client disconnected"), status_code=400)
        except AudioError as e:
            return JSONResponse(error_body(AUDIO_UNREADABLE, f"audio read fail: {e}"), status_code=400)
        except Exception:
            logger.exception("recognition failed")
            return JSONResponse(error_body(INTERNAL_ERROR, "internal error (see the server log)"), status_code=500)
        finally:
            uploads -= 1
        score, text = joined_result(results)
        logger.info(f"识别时间：{round((time.time() - start) * 1000)}ms，识别结果：{text}， 得分: {score:f}")
        answer = {"code": 0, "msg": "success", "result": text, "score": round(score, 3)}
        if is_true(fields.get("timestamps", request.query_params.get("timestamps"))):
            answer["timestamps"] = timestamps_json(results)
        return JSONResponse(answer)

    @app.post("/recognition")
    async def recognition(request: Request) -> JSONResponse:
        return await recognize(request, long_audio=False)

    @app.post("/recognition_long_audio")
    async def recognition_long_audio(request: Request) -> JSONResponse:
        return await recognize(request, long_audio=True)

    @app.websocket("/ws/asr")
    async def stream(websocket: WebSocket) -> None:
        nonlocal open_streams
        refusal = refuse_request(websocket.headers, websocket.query_params.get("token"), limits)
        if refusal:  # before the handshake completes: the client gets HTTP 403
            warn_refused(f"WebSocket refused: {refusal}")
            await websocket.close(1008)
            return
        await websocket.accept()
        if open_streams >= recognizer.limits.max_streams:
            await close_with_error(websocket, BUSY, f"server busy: {open_streams} streams open "
                                                    f"(--max_streams); try again later", 1013)
            return
        open_streams += 1
        try:
            await serve_stream(websocket, recognizer)
        except (WebSocketDisconnect, SendTimeout):
            logger.info("WebSocket client left mid-stream")
        except Exception:
            logger.exception("streaming recognition failed")
            await close_with_error(websocket, INTERNAL_ERROR, "internal error (see the server log)", 1011)
        finally:
            open_streams -= 1

    return app


def refuse_request(headers, query_token: str | None, limits: Limits) -> str | None:
    """Why a browser request from another site, or one without the shared token, is refused (None: allowed).

    Without this check any web page a user opens could drive the server on their machine or LAN
    (cross-site WebSocket hijacking; a cross-site form POST needs no CORS permission either).
    """
    origin = headers.get("origin")
    if origin is not None and not origin_allowed(origin, headers.get("host", ""), limits.allowed_origins):
        return f"origin {origin[:100]} not allowed (--allowed_origins)"
    if limits.token is not None:
        given = query_token or headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), limits.token.encode()):
            return "missing or wrong token (--token; send ?token=… or the header Authorization: Bearer …)"
    return None


def origin_allowed(origin: str, host: str, allowed: tuple[str, ...]) -> bool:
    """Same origin (the page this server served), or one that ``--allowed_origins`` lists, or ``*``."""
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


class SendTimeout(Exception):
    """A client that did not take an answer within ``--stream_idle_seconds``."""


async def send_answer(websocket: WebSocket, answer: dict, timeout: float) -> None:
    """Send one JSON answer; a client that never reads would otherwise hold its stream slot forever."""
    try:
        await asyncio.wait_for(websocket.send_json(answer), timeout)
    except asyncio.TimeoutError:
        raise SendTimeout() from None


async def close_with_error(websocket: WebSocket, code: int, msg: str, close_code: int, timeout: float = 10) -> None:
    try:
        await send_answer(websocket, error_body(code, msg), timeout)
        await websocket.close(close_code, reason=msg[:120])
    except (SendTimeout, RuntimeError, WebSocketDisconnect):
        pass  # the client is gone or does not read; the connection is dropped either way


class Inbox:
    """One client's WebSocket messages, read as they arrive.

    Reading never waits for the model: uvicorn stops reading a socket once 32 messages wait, and a
    client's keepalive pong queued behind unread audio then goes unseen, so the server drops the
    stream with "keepalive ping timeout" exactly when it is loaded (measured: 16 PPASR-size streams).
    Audio that piles up while the model is behind is taken in one model call. At most ``limit``
    bytes and ``INBOX_MAX_MESSAGES`` messages wait (each counted with ``MESSAGE_OVERHEAD``: a client
    sending a million empty frames or ``{"end": true}`` without reading the answers costs nothing
    more); beyond that reading pauses and the client's TCP window closes.
    """

    def __init__(self, websocket: WebSocket, limit: int):
        self._websocket = websocket
        self._limit = limit
        self._messages: collections.deque[dict] = collections.deque()
        self._waiting_bytes = 0
        self._arrived = asyncio.Event()
        self._drained = asyncio.Event()

    async def read(self) -> None:
        """Move messages from the socket into the inbox until the client leaves."""
        while True:
            try:
                message = await self._websocket.receive()
            except Exception:  # the connection broke under the read: the same as leaving
                message = {"type": "websocket.disconnect"}
            while self._waiting_bytes > self._limit or len(self._messages) >= INBOX_MAX_MESSAGES:
                self._drained.clear()
                await self._drained.wait()
            self._waiting_bytes += message_cost(message)
            self._messages.append(message)
            self._arrived.set()
            if message["type"] == "websocket.disconnect":
                return

    async def next(self, timeout: float) -> dict | None:
        """The next message, or None when none arrives within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self._messages:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return None
        return self._take()

    def waiting_audio(self) -> list[bytes]:
        """The binary messages at the head of the inbox (audio that arrived while the model was busy)."""
        frames = []
        while self._messages and self._messages[0].get("bytes") is not None:
            frames.append(self._take()["bytes"])
        return frames

    def _take(self) -> dict:
        message = self._messages.popleft()
        self._waiting_bytes -= message_cost(message)
        self._drained.set()
        return message


def message_cost(message: dict) -> int:
    return MESSAGE_OVERHEAD + len(message.get("bytes") or b"") + len(message.get("text") or "")


async def serve_stream(websocket: WebSocket, recognizer: Recognizer) -> None:
    """Run the WebSocket protocol for one client until it closes or breaks it."""
    max_samples = int(recognizer.limits.max_audio_seconds * PCM_SAMPLE_RATE)
    inbox = Inbox(websocket, 2 * max_samples)
    reader = asyncio.create_task(inbox.read())
    try:
        await answer_messages(websocket, recognizer, inbox, max_samples)
    finally:
        reader.cancel()


async def answer_messages(websocket: WebSocket, recognizer: Recognizer, inbox: Inbox, max_samples: int) -> None:
    utterance: StreamedUtterance | None = None
    with_times = False  # what the last start message asked for
    hotwords: HotwordGraph | None = None
    odd_byte = b""  # a frame may split a 16-bit sample
    idle = recognizer.limits.stream_idle_seconds
    last_audio = time.monotonic()
    while True:
        message = await inbox.next(last_audio + idle - time.monotonic())
        if message is None:
            await close_with_error(websocket, IDLE, f"no audio for {idle:g} s (--stream_idle_seconds); closing",
                                   1000)
            logger.info(f"WebSocket stream closed: no audio for {idle:g} s")
            return
        if message["type"] == "websocket.disconnect":
            if utterance is not None and utterance.samples:
                logger.info(f"WebSocket client left mid-utterance ({utterance.samples / PCM_SAMPLE_RATE:.1f} s "
                            f"of audio dropped)")
            return
        if message.get("bytes") is not None:
            frames = [message["bytes"]] + inbox.waiting_audio()
            data = odd_byte + b"".join(frames)
            if len(data) > len(odd_byte):
                last_audio = time.monotonic()
            odd_byte = data[len(data) - len(data) % 2:]
            utterance = utterance or await recognizer.run(recognizer.open_utterance)
            if utterance.samples + len(data) // 2 > max_samples:
                await close_with_error(websocket, TOO_LARGE, f"utterance longer than "
                                       f"{recognizer.limits.max_audio_seconds:.0f} s (--max_audio_seconds); send "
                                       f'{{"end": true}} between utterances', 1009)
                return
            partial = await recognizer.run(utterance.accept, data[:len(data) - len(odd_byte)])
            answer = {"code": 0, "is_end": False, "result": partial.text}
            if with_times:
                answer["timestamps"] = timestamps_json([partial])
            for _ in frames:  # every binary frame gets its answer, also when several were taken at once
                await send_answer(websocket, answer, idle)
            continue
        control = control_message(message.get("text"))
        if control is None:
            await close_with_error(websocket, BAD_MESSAGE, 'expected binary frames of 16 kHz mono 16-bit PCM, '
                                   'the text frame {"end": true} or a start message {"timestamps": true, "hotwords": "…"}', 1003)
            return
        if control.get("end") is not True:
            with_times = control.get("timestamps", with_times)
            if "hotwords" in control:
                try:
                    hotwords = recognizer.hotwords(control["hotwords"])
                except ClientError as e:
                    await close_with_error(websocket, e.code, e.msg, 1003)
                    return
            continue
        utterance = utterance or await recognizer.run(recognizer.open_utterance)
        results = await recognizer.run(utterance.finish, hotwords)
        score, text = joined_result(results)
        logger.info(f"流式识别 ({utterance.samples / PCM_SAMPLE_RATE:.1f} s)，识别结果：{text}， 得分: {score:f}")
        answer = {"code": 0, "is_end": True, "result": text, "score": round(score, 3)}
        if with_times:
            answer["timestamps"] = timestamps_json(results)
        await send_answer(websocket, answer, idle)
        utterance, odd_byte = None, b""


def control_message(text: str | None) -> dict | None:
    """A valid text frame as a dict: ``{"end": true}`` or a start message with ``"timestamps": <bool>`` and/or
    ``"hotwords": <string or list>``; None for anything else."""
    try:
        message = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    if message.get("end") is True:
        return message
    if message and set(message) <= {"timestamps", "hotwords"} and isinstance(message.get("timestamps", False), bool):
        return message
    return None


class RateLimitedWarning:
    """One log line per ``interval`` seconds for an event an attacker can repeat (with a count)."""

    def __init__(self, interval: float = 10.0):
        self._interval = interval
        self._last = -interval
        self._suppressed = 0

    def __call__(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._suppressed += 1
            return
        more = f" ({self._suppressed} more like it not logged)" if self._suppressed else ""
        logger.warning(message + more)
        self._last, self._suppressed = now, 0


def guarded_protocol(max_connections: int, header_timeout: float, body_timeout: float) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with a connection cap and header and body deadlines.

    uvicorn times out idle keep-alive connections only after a first response: a connection that
    sends nothing, half a header or half a body stays open forever (1100 of them stopped all service).
    Over the cap a connection is answered 503 and closed at once; a request whose headers are not in
    within ``header_timeout`` or whose body is not in within ``body_timeout`` more is dropped.
    """
    warn = RateLimitedWarning()

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                warn(f"connection refused: {max_connections} connections open (--max_connections)")
                transport.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
                transport.close()
                return
            self._arm_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_deadline()

        def connection_lost(self, exc) -> None:
            if getattr(self, "_deadline", None) is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm_deadline(self) -> None:
            self._deadline = self.loop.call_later(header_timeout, self._check_deadline, False)

        def _check_deadline(self, body: bool) -> None:
            self._deadline = None
            if self.transport.is_closing() or self.transport.get_protocol() is not self:  # closed or a WebSocket now
                return
            if self.conn.their_state is h11.SEND_BODY and not body:
                self._deadline = self.loop.call_later(body_timeout, self._check_deadline, True)
            elif self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and (
                    body or self.cycle is None or self.cycle.response_complete):
                warn(f"connection dropped: request {'body' if body else 'headers'} not received within "
                     f"{body_timeout if body else header_timeout:g} s (--{'body' if body else 'header'}_timeout)")
                self.transport.close()

    return GuardedH11Protocol


def quiet_accept_errors(warn: RateLimitedWarning) -> Callable:
    """An event-loop exception handler that logs running out of file descriptors once per interval.

    asyncio logs every failed ``accept()`` with a traceback; with the descriptors gone that is a log line
    per retry (787,554 tracebacks, 365 MB in 65 s were measured), which fills the disk of the server.
    """

    def handle(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if context.get("message", "").startswith("socket.accept() out of system resource"):
            warn(f"out of file descriptors ({context.get('exception')}): new connections wait; raise "
                 f"`ulimit -n` or lower --max_connections")
            return
        loop.default_exception_handler(context)

    return handle


def fit_connections_to_fd_limit(max_connections: int) -> int:
    """Raise the soft descriptor limit toward the hard one; lower ``max_connections`` if it still does not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitted = max(1, soft - FD_RESERVE)
        logger.warning(f"--max_connections={max_connections} does not fit the file descriptor limit "
                       f"(ulimit -n {soft}); using {fitted}")
        return fitted
    return max_connections


def exposure_warnings(host: str, port: int, token: str | None) -> list[str]:
    """What the startup log says about who can reach the server (nothing when bound to loopback)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return []
    who = (", with no authentication: anyone who can reach it can use it (set --token)" if token is None
           else " (requests need --token)")
    return [f"listening on {host}:{port}: reachable from other machines on the network{who}",
            "to serve this machine only, start with --host=127.0.0.1"]


def serve(source: ModelSource, options: ServeOptions, decoding: DecodeOptions) -> None:
    """The whole infer_server.py job: load the model, then serve until interrupted."""
    setup_logging()
    set_paddle_threads()
    predictor = source.load()
    decoder = build_decoder(decoding, predictor.vocabulary)
    max_connections = fit_connections_to_fd_limit(options.max_connections)
    app = create_app(Recognizer(predictor, decoder, options.to_an, options.vad, options.limits()))
    for line in exposure_warnings(options.host, options.port, options.token):
        logger.warning(line)
    config = uvicorn.Config(app, host=options.host, port=options.port, log_level="info", ws_per_message_deflate=False,
                            ws_max_size=WS_MAX_FRAME_BYTES, limit_concurrency=max_connections, timeout_keep_alive=5,
                            http=guarded_protocol(max_connections, options.header_timeout, options.body_timeout))
    server = uvicorn.Server(config)
    warn = RateLimitedWarning()

    async def run() -> None:
        asyncio.get_running_loop().set_exception_handler(quiet_accept_errors(warn))
        await server.serve()

    asyncio.run(run())
