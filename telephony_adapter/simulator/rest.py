"""ARI's REST surface (``/ari/...``) over the simulator core, as a Starlette app.

Parameters are read from the query string and, as Asterisk also accepts, from a JSON
body; errors are ``{"message": ...}`` with Asterisk's status codes. Shapes follow the
Swagger models in Asterisk's ``rest-api/api-docs`` (checked by the tests).
"""

from __future__ import annotations

import base64
import io
import wave
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from telephony_adapter.simulator.core import SimError

if TYPE_CHECKING:
    from telephony_adapter.simulator.server import Simulator


def _no_content() -> Response:
    return Response(status_code=204)


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    if request.method in ("POST", "PUT") and request.headers.get("content-length", "0") != "0":
        try:
            body = await request.json()
        except ValueError:
            raise SimError(400, "Invalid JSON body")
        if isinstance(body, dict):
            for key, value in body.items():
                params.setdefault(key, value)
    return params


def _int(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SimError(400, f"Invalid value for {name}: {value!r}")


def _list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v for v in str(value).split(",") if v != ""]


def silent_wav(seconds: int) -> bytes:
    """A real 8 kHz mono WAV of silence (capped at 5 s) standing in for the recording."""
    frames = 8000 * max(0, min(int(seconds), 5))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * frames)
    return out.getvalue()


def build_app(sim: "Simulator") -> Starlette:
    core = sim.core

    def authorised(request: Request) -> bool:
        api_key = request.query_params.get("api_key")
        if api_key is not None:
            return api_key == f"{sim.username}:{sim.password}"
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return (user, pw) == (sim.username, sim.password)
        return False

    def endpoint(fn: Callable[[Request, dict[str, Any]], Awaitable[Any]]) -> Callable:
        async def handler(request: Request) -> Response:
            if sim.down:
                return JSONResponse({"message": "Asterisk is restarting"}, status_code=503)
            if not authorised(request):
                return JSONResponse({"message": "Authentication required"}, status_code=401,
                                    headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'})
            try:
                params = await _params(request)
                result = await fn(request, params)
            except SimError as exc:
                sim.responses.append((request.method, request.url.path, exc.status))
                return JSONResponse({"message": exc.message}, status_code=exc.status)
            sim.requests.append((request.method, request.url.path, dict(request.query_params)))
            if isinstance(result, Response):
                response = result
            elif result is None:
                response = _no_content()
            else:
                response = JSONResponse(result)
            sim.responses.append((request.method, request.url.path, response.status_code))
            return response
        return handler

    def pp(request: Request, name: str) -> str:
        return request.path_params[name]

    # --- asterisk / applications / endpoints ------------------------------------------------

    async def asterisk_info(request: Request, p: dict) -> Any:
        return {"build": {"os": "Linux", "kernel": "", "machine": "x86_64",
                          "options": "OPTIONAL_API", "date": "", "user": "lianxin-simulator"},
                "system": {"version": "22-lianxin-simulator", "entity_id": "02:fc:00:00:00:01"},
                "config": {"name": "", "default_language": "en",
                           "setid": {"user": "", "group": ""}},
                "status": {"startup_time": core.startup_time,
                           "last_reload_time": core.startup_time}}

    async def asterisk_ping(request: Request, p: dict) -> Any:
        return {"asterisk_id": "02:fc:00:00:00:01", "ping": "pong",
                "timestamp": core.clock.stamp()}

    async def applications(request: Request, p: dict) -> Any:
        names = sorted({s.app for s in core.subscribers})
        return [sim.application_json(n) for n in names]

    async def application(request: Request, p: dict) -> Any:
        name = pp(request, "app")
        if not core.registered(name):
            raise SimError(404, "Application not found")
        return sim.application_json(name)

    async def endpoints(request: Request, p: dict) -> Any:
        return [sim.endpoint_json(e) for e in sorted(core.endpoints)]

    # --- channels -----------------------------------------------------------------------

    async def list_channels(request: Request, p: dict) -> Any:
        return [ch.to_json() for ch in core.channels.values()]

    async def originate(request: Request, p: dict) -> Any:
        channel_id = request.path_params.get("channel_id") or p.get("channelId")
        if not p.get("endpoint"):
            raise SimError(400, "Required parameter endpoint not provided")
        created = core.originate(p["endpoint"], app=p.get("app"), app_args=_list(p.get("appArgs")),
                                 channel_id=channel_id, caller_id=p.get("callerId"),
                                 timeout=_int(p, "timeout", 30) or 30,
                                 context=p.get("context"), extension=p.get("extension"),
                                 other_channel_id=p.get("otherChannelId"))
        return created.json

    async def create_channel(request: Request, p: dict) -> Any:
        if not p.get("endpoint") or not p.get("app"):
            raise SimError(400, "Required parameters endpoint and app not provided")
        created = core.create_channel(p["endpoint"], app=p["app"],
                                      app_args=_list(p.get("appArgs")),
                                      channel_id=p.get("channelId"))
        return created.json

    async def dial(request: Request, p: dict) -> Any:
        core.dial_created(pp(request, "channel_id"), timeout=_int(p, "timeout", 30) or 30)

    async def get_channel(request: Request, p: dict) -> Any:
        return core.channel(pp(request, "channel_id")).to_json()

    async def delete_channel(request: Request, p: dict) -> Any:
        core.hangup(pp(request, "channel_id"), p.get("reason"), _int(p, "reason_code"))

    async def answer(request: Request, p: dict) -> Any:
        core.answer(pp(request, "channel_id"))

    async def ring(request: Request, p: dict) -> Any:
        core.ring(pp(request, "channel_id"), request.method == "POST")

    async def hold(request: Request, p: dict) -> Any:
        core.set_hold(pp(request, "channel_id"), request.method == "POST")

    async def moh(request: Request, p: dict) -> Any:
        cid = pp(request, "channel_id")
        core.set_moh(cid, (p.get("mohClass") or "default") if request.method == "POST" else None)

    async def mute(request: Request, p: dict) -> Any:
        core.stasis_channel(pp(request, "channel_id"))

    async def dtmf(request: Request, p: dict) -> Any:
        core.send_dtmf(pp(request, "channel_id"), p.get("dtmf") or "")

    async def play_channel(request: Request, p: dict) -> Any:
        created = core.play("channel", pp(request, "channel_id"), _list(p.get("media")),
                            request.path_params.get("playback_id") or p.get("playbackId"))
        return JSONResponse(created.json, status_code=201)

    async def record_channel(request: Request, p: dict) -> Any:
        created = core.record("channel", pp(request, "channel_id"), name=p.get("name"),
                              fmt=p.get("format"), if_exists=p.get("ifExists"),
                              max_duration=_int(p, "maxDurationSeconds"))
        return JSONResponse(created.json, status_code=201)

    async def snoop(request: Request, p: dict) -> Any:
        created = core.snoop(pp(request, "channel_id"), app=p.get("app"),
                             spy=p.get("spy") or "none", whisper=p.get("whisper") or "none",
                             app_args=_list(p.get("appArgs")),
                             snoop_id=request.path_params.get("snoop_id") or p.get("snoopId"))
        return created.json

    async def redirect(request: Request, p: dict) -> Any:
        core.redirect(pp(request, "channel_id"), p.get("endpoint"))

    async def continue_(request: Request, p: dict) -> Any:
        core.continue_in_dialplan(pp(request, "channel_id"), p.get("context"),
                                  p.get("extension"), _int(p, "priority"))

    async def variable(request: Request, p: dict) -> Any:
        cid = pp(request, "channel_id")
        if request.method == "GET":
            return {"value": core.get_variable(cid, p.get("variable"))}
        core.set_variable(cid, p.get("variable"), str(p.get("value") or ""))

    async def transfer_progress(request: Request, p: dict) -> Any:
        core.transfer_progress(pp(request, "channel_id"), p.get("states"))

    # --- bridges ------------------------------------------------------------------------

    async def list_bridges(request: Request, p: dict) -> Any:
        return [br.to_json() for br in core.bridges.values()]

    async def create_bridge(request: Request, p: dict) -> Any:
        bridge_id = request.path_params.get("bridge_id") or p.get("bridgeId")
        return core.create_bridge(p.get("type"), bridge_id, p.get("name"), sim.app).to_json()

    async def get_bridge(request: Request, p: dict) -> Any:
        return core.bridge(pp(request, "bridge_id")).to_json()

    async def delete_bridge(request: Request, p: dict) -> Any:
        core.destroy_bridge(pp(request, "bridge_id"))

    async def add_channel(request: Request, p: dict) -> Any:
        core.add_channels(pp(request, "bridge_id"), _list(p.get("channel")))

    async def remove_channel(request: Request, p: dict) -> Any:
        core.remove_channels(pp(request, "bridge_id"), _list(p.get("channel")))

    async def bridge_moh(request: Request, p: dict) -> Any:
        core.bridge_moh(pp(request, "bridge_id"), p.get("mohClass"), request.method == "POST")

    async def play_bridge(request: Request, p: dict) -> Any:
        created = core.play("bridge", pp(request, "bridge_id"), _list(p.get("media")),
                            request.path_params.get("playback_id") or p.get("playbackId"))
        return JSONResponse(created.json, status_code=201)

    async def record_bridge(request: Request, p: dict) -> Any:
        created = core.record("bridge", pp(request, "bridge_id"), name=p.get("name"),
                              fmt=p.get("format"), if_exists=p.get("ifExists"),
                              max_duration=_int(p, "maxDurationSeconds"))
        return JSONResponse(created.json, status_code=201)

    # --- playbacks and recordings ----------------------------------------------------------

    async def playback(request: Request, p: dict) -> Any:
        pb_id = pp(request, "playback_id")
        if request.method == "DELETE":
            core.stop_playback(pb_id)
            return None
        pb = core.playbacks.get(pb_id)
        if pb is None:
            raise SimError(404, "Playback not found")
        return pb.to_json()

    async def live_recording(request: Request, p: dict) -> Any:
        name = pp(request, "name")
        if request.method == "DELETE":
            core.stop_recording(name, discard=True)
            return None
        rec = core.live_recordings.get(name)
        if rec is None:
            raise SimError(404, "Recording not found")
        return rec.to_json()

    async def stop_recording(request: Request, p: dict) -> Any:
        core.stop_recording(pp(request, "name"))

    async def stored_recordings(request: Request, p: dict) -> Any:
        return [{"name": r.name, "format": r.format} for r in core.stored_recordings.values()]

    async def stored_recording(request: Request, p: dict) -> Any:
        name = pp(request, "name")
        rec = core.stored_recordings.get(name)
        if rec is None:
            raise SimError(404, "Recording not found")
        if request.method == "DELETE":
            del core.stored_recordings[name]
            return None
        return {"name": rec.name, "format": rec.format}

    async def stored_recording_file(request: Request, p: dict) -> Any:
        rec = core.stored_recordings.get(pp(request, "name"))
        if rec is None:
            raise SimError(404, "Recording not found")
        return Response(silent_wav(rec.duration or 0), media_type="audio/wav")

    E = endpoint
    ch = "/ari/channels/{channel_id}"
    br = "/ari/bridges/{bridge_id}"
    routes = [
        Route("/ari/asterisk/info", E(asterisk_info), methods=["GET"]),
        Route("/ari/asterisk/ping", E(asterisk_ping), methods=["GET"]),
        Route("/ari/applications", E(applications), methods=["GET"]),
        Route("/ari/applications/{app}", E(application), methods=["GET"]),
        Route("/ari/endpoints", E(endpoints), methods=["GET"]),
        Route("/ari/channels", E(list_channels), methods=["GET"]),
        Route("/ari/channels", E(originate), methods=["POST"]),
        Route("/ari/channels/create", E(create_channel), methods=["POST"]),
        Route(ch, E(get_channel), methods=["GET"]),
        Route(ch, E(originate), methods=["POST"]),
        Route(ch, E(delete_channel), methods=["DELETE"]),
        Route(ch + "/answer", E(answer), methods=["POST"]),
        Route(ch + "/ring", E(ring), methods=["POST", "DELETE"]),
        Route(ch + "/hold", E(hold), methods=["POST", "DELETE"]),
        Route(ch + "/moh", E(moh), methods=["POST", "DELETE"]),
        Route(ch + "/mute", E(mute), methods=["POST", "DELETE"]),
        Route(ch + "/silence", E(mute), methods=["POST", "DELETE"]),
        Route(ch + "/dtmf", E(dtmf), methods=["POST"]),
        Route(ch + "/play", E(play_channel), methods=["POST"]),
        Route(ch + "/play/{playback_id}", E(play_channel), methods=["POST"]),
        Route(ch + "/record", E(record_channel), methods=["POST"]),
        Route(ch + "/snoop", E(snoop), methods=["POST"]),
        Route(ch + "/snoop/{snoop_id}", E(snoop), methods=["POST"]),
        Route(ch + "/redirect", E(redirect), methods=["POST"]),
        Route(ch + "/continue", E(continue_), methods=["POST"]),
        Route(ch + "/variable", E(variable), methods=["GET", "POST"]),
        Route(ch + "/dial", E(dial), methods=["POST"]),
        Route(ch + "/transfer_progress", E(transfer_progress), methods=["POST"]),
        Route("/ari/bridges", E(list_bridges), methods=["GET"]),
        Route("/ari/bridges", E(create_bridge), methods=["POST"]),
        Route(br, E(get_bridge), methods=["GET"]),
        Route(br, E(create_bridge), methods=["POST"]),
        Route(br, E(delete_bridge), methods=["DELETE"]),
        Route(br + "/addChannel", E(add_channel), methods=["POST"]),
        Route(br + "/removeChannel", E(remove_channel), methods=["POST"]),
        Route(br + "/moh", E(bridge_moh), methods=["POST", "DELETE"]),
        Route(br + "/play", E(play_bridge), methods=["POST"]),
        Route(br + "/play/{playback_id}", E(play_bridge), methods=["POST"]),
        Route(br + "/record", E(record_bridge), methods=["POST"]),
        Route("/ari/playbacks/{playback_id}", E(playback), methods=["GET", "DELETE"]),
        Route("/ari/recordings/live/{name}", E(live_recording), methods=["GET", "DELETE"]),
        Route("/ari/recordings/live/{name}/stop", E(stop_recording), methods=["POST"]),
        Route("/ari/recordings/stored", E(stored_recordings), methods=["GET"]),
        Route("/ari/recordings/stored/{name}", E(stored_recording), methods=["GET", "DELETE"]),
        Route("/ari/recordings/stored/{name}/file", E(stored_recording_file), methods=["GET"]),
        WebSocketRoute("/ari/events", sim.events_endpoint),
    ]
    return Starlette(routes=routes)
