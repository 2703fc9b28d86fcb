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
Errors are ``{"code": <non-zero>, "msg": <reason>}`` followed by a close.
"""
from __future__ import annotations

import asyncio
import collections
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from ppasr.data.audio import AudioError, audio_info, read_audio
from ppasr.data.text import to_arabic_numerals
from ppasr.decode.greedy import IncrementalGreedyDecoder
from ppasr.decode.text_decoder import build_decoder
from ppasr.logger import logger, setup_logging
from ppasr.serve.infer import Predictor, check_vocabulary, transcribe_segments
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

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the server."""

    max_upload_bytes: int
    max_audio_seconds: float  # per upload and per streamed utterance
    max_streams: int  # WebSocket streams open at once


class ClientError(Exception):
    """A request the server refuses: answered as ``{"code", "msg"}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


class Recognizer:
    """The predictor and decoder behind one worker thread; ``run`` calls them off the event loop."""

    def __init__(self, predictor: Predictor, decode: Callable[[np.ndarray], tuple[str, float]], to_an: bool,
                 limits: Limits):
        self.predictor = predictor
        self.decode = decode
        self.to_an = to_an
        self.limits = limits
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ppasr-model")

    async def run(self, fn: Callable[..., T], *args) -> T:
        """Run ``fn(*args)`` on the model thread and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    def text(self, text: str) -> str:
        return to_arabic_numerals(text) if self.to_an else text

    def recognize_file(self, data: bytes, long_audio: bool) -> tuple[str, float]:
        """Text and score of an uploaded file (any soundfile format, rate and channels)."""
        duration = audio_info(io.BytesIO(data))[0]
        if duration > self.limits.max_audio_seconds:
            raise ClientError(TOO_LARGE, f"audio is {duration:.0f} s long, the limit is "
                                         f"{self.limits.max_audio_seconds:.0f} s (--max_audio_seconds)", 413)
        samples, _ = read_audio(io.BytesIO(data), self.predictor.feature_config.sample_rate)
        results = transcribe_segments(self.predictor, samples, self.decode, self.to_an, long_audio)
        if not results:
            return "", 0.0
        return "，".join(text for text, _ in results), float(np.mean([score for _, score in results]))

    def open_utterance(self) -> Utterance:
        return Utterance(self)


class Utterance:
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
        self.samples = 0

    def accept(self, pcm: bytes) -> str:
        """Add 16-bit PCM; return the text so far (greedy over the frames the stream has computed)."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self.samples += samples.shape[0]
        self._samples.append(samples)
        return self._recognizer.text(self._partial.extend(self._stream.accept(samples)))

    def finish(self) -> tuple[str, float]:
        """Final text and score of the whole utterance."""
        samples = np.concatenate(self._samples) if self._samples else np.zeros(0, dtype=np.float32)
        self._samples = []
        results = transcribe_segments(self._recognizer.predictor, samples, self._recognizer.decode,
                                      self._recognizer.to_an, long_audio=False)
        return results[0] if results else ("", 0.0)


def error_body(code: int, msg: str) -> dict:
    return {"code": code, "msg": msg}


async def read_upload(request: Request, max_bytes: int) -> bytes:
    """The bytes of multipart field ``audio``; the body is read in memory up to the size limit."""
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
    try:
        upload = form.get("audio")
        if not isinstance(upload, UploadFile):
            raise ClientError(NO_AUDIO, "no file in multipart/form-data field 'audio'")
        data = await upload.read()
    finally:
        await form.close()
    if not data:
        raise ClientError(NO_AUDIO, "audio is empty")
    if len(data) > max_bytes:
        raise too_large
    return data


def create_app(recognizer: Recognizer) -> FastAPI:
    """The web application: page, file recognition endpoints and the streaming WebSocket."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        recognizer.close()

    app = FastAPI(title="ppasr", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    open_streams = 0

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    async def recognize(request: Request, long_audio: bool) -> JSONResponse:
        start = time.time()
        try:
            data = await read_upload(request, recognizer.limits.max_upload_bytes)
            text, score = await recognizer.run(recognizer.recognize_file, data, long_audio)
        except ClientError as e:
            return JSONResponse(error_body(e.code, e.msg), status_code=e.status)
        except AudioError as e:
            return JSONResponse(error_body(AUDIO_UNREADABLE, f"audio read fail: {e}"), status_code=400)
        except Exception:
            logger.exception("recognition failed")
            return JSONResponse(error_body(INTERNAL_ERROR, "internal error (see the server log)"), status_code=500)
        logger.info(f"识别时间：{round((time.time() - start) * 1000)}ms，识别结果：{text}， 得分: {score:f}")
        return JSONResponse({"code": 0, "msg": "success", "result": text, "score": round(score, 3)})

    @app.post("/recognition")
    async def recognition(request: Request) -> JSONResponse:
        return await recognize(request, long_audio=False)

    @app.post("/recognition_long_audio")
    async def recognition_long_audio(request: Request) -> JSONResponse:
        return await recognize(request, long_audio=True)

    @app.websocket("/ws/asr")
    async def stream(websocket: WebSocket) -> None:
        nonlocal open_streams
        await websocket.accept()
        if open_streams >= recognizer.limits.max_streams:
            await close_with_error(websocket, BUSY, f"server busy: {open_streams} streams open "
                                                    f"(--max_streams); try again later", 1013)
            return
        open_streams += 1
        try:
            await serve_stream(websocket, recognizer)
        except WebSocketDisconnect:
            logger.info("WebSocket client left mid-stream")
        except Exception:
            logger.exception("streaming recognition failed")
            await close_with_error(websocket, INTERNAL_ERROR, "internal error (see the server log)", 1011)
        finally:
            open_streams -= 1

    return app


async def close_with_error(websocket: WebSocket, code: int, msg: str, close_code: int) -> None:
    await websocket.send_json(error_body(code, msg))
    await websocket.close(close_code)


class Inbox:
    """One client's WebSocket messages, read as they arrive.

    Reading never waits for the model: uvicorn stops reading a socket once 32 messages wait, and a
    client's keepalive pong queued behind unread audio then goes unseen, so the server drops the
    stream with "keepalive ping timeout" exactly when it is loaded (measured: 16 PPASR-size streams).
    Audio that piles up while the model is behind is taken in one model call. At most ``limit``
    bytes of audio wait; beyond that reading pauses.
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
            while self._waiting_bytes > self._limit:
                self._drained.clear()
                await self._drained.wait()
            self._waiting_bytes += len(message.get("bytes") or b"")
            self._messages.append(message)
            self._arrived.set()
            if message["type"] == "websocket.disconnect":
                return

    async def next(self) -> dict:
        while not self._messages:
            self._arrived.clear()
            await self._arrived.wait()
        return self._take()

    def waiting_audio(self) -> list[bytes]:
        """The binary messages at the head of the inbox (audio that arrived while the model was busy)."""
        frames = []
        while self._messages and self._messages[0].get("bytes") is not None:
            frames.append(self._take()["bytes"])
        return frames

    def _take(self) -> dict:
        message = self._messages.popleft()
        self._waiting_bytes -= len(message.get("bytes") or b"")
        self._drained.set()
        return message


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
    utterance: Utterance | None = None
    odd_byte = b""  # a frame may split a 16-bit sample
    while True:
        message = await inbox.next()
        if message["type"] == "websocket.disconnect":
            if utterance is not None and utterance.samples:
                logger.info(f"WebSocket client left mid-utterance ({utterance.samples / PCM_SAMPLE_RATE:.1f} s "
                            f"of audio dropped)")
            return
        if message.get("bytes") is not None:
            frames = [message["bytes"]] + inbox.waiting_audio()
            data = odd_byte + b"".join(frames)
            odd_byte = data[len(data) - len(data) % 2:]
            utterance = utterance or await recognizer.run(recognizer.open_utterance)
            if utterance.samples + len(data) // 2 > max_samples:
                await close_with_error(websocket, TOO_LARGE, f"utterance longer than "
                                       f"{recognizer.limits.max_audio_seconds:.0f} s (--max_audio_seconds); send "
                                       f'{{"end": true}} between utterances', 1009)
                return
            partial = await recognizer.run(utterance.accept, data[:len(data) - len(odd_byte)])
            for _ in frames:  # every binary frame gets its answer, also when several were taken at once
                await websocket.send_json({"code": 0, "is_end": False, "result": partial})
            continue
        if not is_end_message(message.get("text")):
            await close_with_error(websocket, BAD_MESSAGE, 'expected binary frames of 16 kHz mono 16-bit PCM or '
                                   'the text frame {"end": true}', 1003)
            return
        utterance = utterance or await recognizer.run(recognizer.open_utterance)
        text, score = await recognizer.run(utterance.finish)
        logger.info(f"流式识别 ({utterance.samples / PCM_SAMPLE_RATE:.1f} s)，识别结果：{text}， 得分: {score:f}")
        await websocket.send_json({"code": 0, "is_end": True, "result": text, "score": round(score, 3)})
        utterance, odd_byte = None, b""


def is_end_message(text: str | None) -> bool:
    try:
        message = json.loads(text) if text else None
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("end") is True


def serve(args) -> None:
    """The whole infer_server.py job: load the model, then serve until interrupted."""
    setup_logging()
    set_paddle_threads()
    predictor = Predictor(args.model_dir, args.use_gpu, args.backend, args.num_threads)
    check_vocabulary(predictor, args.vocab_path, args.model_dir)
    decoder = build_decoder(args, predictor.vocabulary, num_processes=1)
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_audio_seconds=args.max_audio_seconds,
                    max_streams=args.max_streams)
    app = create_app(Recognizer(predictor, decoder, args.to_an, limits))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
