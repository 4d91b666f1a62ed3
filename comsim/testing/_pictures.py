"""Pictures of a trace: a text timeline, a Mermaid sequence diagram, a Chrome trace.

The three renderers read the event dicts that ``capture_trace()`` collects (see the README,
"Tracing") and ignore events they do not know, except the text timeline, which shows every
event. ``Trace.to_text()``, ``Trace.to_mermaid()`` and ``Trace.to_chrome_trace()`` call them.

Where each event happens: ``call.sent``, ``call.completed``, ``call.cancel_requested`` and
``call.reply_dropped`` on the client's side; ``call.arrived``, ``call.dispatched`` and
``call.returned`` on the server's; ``call.cancelled`` tells what became of the server's work
(R29's stage), so it is drawn on the server's side whichever apartment noticed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .. import hresult as hr

Event = Mapping[str, Any]

#: the name given to code outside any apartment (an event whose apartment is None or "-")
OUTSIDE = "(outside)"

_CLIENT_SIDE = {"call.sent", "call.completed", "call.cancel_requested", "call.reply_dropped"}
_SERVER_SIDE = {"call.arrived", "call.dispatched", "call.returned", "call.cancelled"}
_CALL_EVENTS = _CLIENT_SIDE | _SERVER_SIDE
_STAGES = {  # R29
    "queued": "cancelled while queued, the server never ran it",
    "running": "cancelled while running, the server was told",
    "finished": "cancelled after the server finished, its work is done",
}


def _apt(name: Any) -> str:
    return OUTSIDE if name is None or name == "-" else str(name)


def where(event: Event) -> str:
    """The apartment an event happens in (for the timeline, the track, the lifeline)."""
    name = event.get("event")
    if name in _CLIENT_SIDE:
        return _apt(event.get("client"))
    if name in _SERVER_SIDE:
        return _apt(event.get("server"))
    return _apt(event.get("apartment"))


def apartments(events: Iterable[Event]) -> list[str]:
    """Apartment names in order of first appearance (a call's client before its server)."""
    seen: dict[str, None] = {}
    for e in events:
        if e.get("event") in _CALL_EVENTS:  # drawn between its client and server, both named
            seen.setdefault(_apt(e.get("client")), None)
            seen.setdefault(_apt(e.get("server")), None)
        elif "client" in e or "server" in e:
            for key in ("client", "server"):
                if key in e:
                    seen.setdefault(_apt(e[key]), None)
        else:
            seen.setdefault(where(e), None)
    return list(seen)


def outcome(event: Event) -> str:
    """"ok" for S_OK, else the HRESULT's name (``hresult_name`` if the event has it)."""
    code = event.get("hresult")
    if code is None:
        return "?"
    if code == hr.S_OK:
        return "ok"
    return str(event.get("hresult_name") or hr.name(code))


def _key(e: Event) -> tuple[Any, Any, Any]:
    return (e.get("client"), e.get("server"), e.get("call_id"))


def reply_ends(events: list[Event]) -> dict[int, int]:
    """For the index of each ``call.returned``, the index of the event at which its reply
    reached the client: a ``call.reply_dropped`` of the call if one follows (before the call is
    sent again), else its next ``call.completed``. A reply that never arrived has none.

    (A cancelled call can complete on the client before its reply comes: R29's ``finished``.)
    """
    by_call: dict[tuple[Any, Any, Any], list[int]] = {}
    for i, e in enumerate(events):
        if str(e.get("event", "")).startswith("call."):
            by_call.setdefault(_key(e), []).append(i)
    ends: dict[int, int] = {}
    for indices in by_call.values():
        for pos, i in enumerate(indices):
            if events[i]["event"] != "call.returned":
                continue
            completed = None
            for j in indices[pos + 1:]:
                name = events[j]["event"]
                if name == "call.sent":
                    break
                if name == "call.reply_dropped":
                    completed = j
                    break
                if name == "call.completed" and completed is None:
                    completed = j
            if completed is not None:
                ends[i] = completed
    return ends


def _call(e: Event) -> str:
    return f"{e.get('method', '?')} (call {e.get('call_id', '?')})"


# --------------------------------------------------------------------------- text
def _describe(e: Event) -> str:
    name = e.get("event")
    call, client, server = _call(e), _apt(e.get("client")), _apt(e.get("server"))
    if name == "call.sent":
        return f"sends {call} to {server}"
    if name == "call.arrived":
        return f"request {call} from {client} arrives"
    if name == "call.dispatched":
        return f"starts {call} for {client}"
    if name == "call.returned":
        text = f"{call} returns {outcome(e)} to {client}"
        return text + (f" ({e['exc']})" if "exc" in e else "")
    if name == "call.completed":
        return f"{call} completes: {outcome(e)}"
    if name == "call.cancel_requested":
        return f"cancels {call} (sent to {server})"
    if name == "call.cancelled":
        return f"{call} cancelled, stage {e.get('stage', '?')}"
    if name == "call.reply_dropped":
        return f"drops the reply to {call}: {outcome(e)} ({e.get('reason', '?')})"
    rest = ", ".join(f"{k}={v!r}" for k, v in e.items() if k not in ("event", "t", "apartment"))
    return f"{name}" + (f" {rest}" if rest else "")


def to_text(events: Iterable[Event]) -> str:
    """A timeline: one line per event, time (ms), apartment, what happened."""
    evs = list(events)
    width = max([len(a) for a in apartments(evs)] + [len("apartment")])
    lines = [f"{'t/ms':>9}  {'apartment':<{width}}  event"]
    for e in evs:
        t = f"{e.get('t', 0.0) * 1000:9.3f}"
        lines.append(f"{t}  {where(e):<{width}}  {_describe(e)}".rstrip())
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Mermaid
_MERMAID_CODES = {"#": "#35;", ";": "#59;", "<": "#lt;", ">": "#gt;", "&": "#amp;",
                  '"': "#quot;", "%": "#37;", "\n": " ", "\r": " "}
#: more characters that end or split a participant's name: arrows, the message colon
_LABEL_CODES = {**_MERMAID_CODES, ":": "#58;", "-": "#45;", "+": "#43;", ",": "#44;"}


def mermaid_text(text: str, label: bool = False) -> str:
    """``text`` made safe for a Mermaid message or note (or, ``label``, a participant's name):
    ``#`` would start a comment, ``;`` end the statement, ``<``/``>``/``&`` read as HTML; each
    becomes Mermaid's entity code (``#59;``), which Mermaid draws as the character. In a message,
    colons after the first are text; in a name, ``:``, ``-``, ``+`` and ``,`` are coded too."""
    codes = _LABEL_CODES if label else _MERMAID_CODES
    return "".join(codes.get(c, c) for c in text)


def to_mermaid(events: Iterable[Event]) -> str:
    """A Mermaid ``sequenceDiagram``: apartments as participants, in order of first appearance;
    requests (``->>``), replies (``-->>``, the HRESULT's name or "ok"), cancels (``-)``),
    dropped replies (``--x``) and R29's stages as notes over the server."""
    evs = list(events)
    ids = {name: f"A{i}" for i, name in enumerate(apartments(evs))}
    lines = ["sequenceDiagram"]
    lines += [f"    participant {pid} as {mermaid_text(name, label=True)}"
              for name, pid in ids.items()]
    ends = reply_ends(evs)
    drop_ends = {j for j in ends.values() if evs[j].get("event") == "call.reply_dropped"}
    reply_of = {j: i for i, j in ends.items()}
    cancelled: set[tuple[Any, Any, Any]] = set()

    def arrow(src: Any, kind: str, dst: Any, text: str) -> None:
        lines.append(f"    {ids[_apt(src)]}{kind}{ids[_apt(dst)]}: {mermaid_text(text)}")

    def note(apt: Any, text: str) -> None:
        lines.append(f"    Note over {ids[_apt(apt)]}: {mermaid_text(text)}")

    for i, e in enumerate(evs):
        name = e.get("event")
        client, server, call = e.get("client"), e.get("server"), _call(e)
        reply = f"{outcome(e)} (call {e.get('call_id')})"
        if name == "call.sent":
            cancelled.discard(_key(e))
            arrow(client, "->>", server, call)
        elif name == "call.returned":
            if ends.get(i) not in drop_ends:  # a dropped reply is drawn where it lands
                arrow(server, "-->>", client, reply)
        elif name == "call.completed":
            if i in reply_of:  # its reply is drawn already
                continue
            if _key(e) in cancelled and e.get("hresult") == hr.RPC_E_CALL_CANCELED:
                note(client, f"{call} ends {outcome(e)}")
            else:  # a reply with no call.returned: a rejection (R16), a disconnect (R18)
                arrow(server, "-->>", client, reply)
        elif name == "call.cancel_requested":
            cancelled.add(_key(e))
            arrow(client, "-)", server, f"cancel {call}")
        elif name == "call.cancelled":  # R29
            stage = str(e.get("stage", "?"))
            note(server, f"{call} {_STAGES.get(stage, 'cancelled, stage ' + stage)}")
        elif name == "call.reply_dropped":
            arrow(server, "--x", client, f"{reply} dropped")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Chrome trace
def _us(e: Event) -> float:
    """An event's ``t`` (seconds) in microseconds, the Trace Event Format's unit."""
    return round(float(e.get("t", 0.0)) * 1e6, 3)


def _args(e: Event, *extra: str) -> dict[str, Any]:
    keys = ("call_id", "causality_id", "client", "server", "hresult", "hresult_name", *extra)
    return {k: e[k] for k in keys if k in e}


def to_chrome_trace(events: Iterable[Event]) -> dict[str, Any]:
    """The Trace Event Format, JSON object form, for Perfetto and chrome://tracing.

    Process 1 ("comsim") has one thread track per apartment (``tid`` 1, 2, ... in order of
    first appearance). On the server's track a complete slice (``X``, category ``call``) per
    dispatched call, from ``call.dispatched`` to ``call.returned``; on the client's track a
    slice (category ``client``) from ``call.sent`` to ``call.completed``, so that the message
    arrows have a slice to start from. Flow arrows (``s`` then ``f``, same ``id``) for each
    request (``call.sent`` -> ``call.dispatched``) and each reply (``call.returned`` ->
    ``call.completed`` or ``call.reply_dropped``); thread-scoped instants for
    ``call.cancel_requested``, ``call.cancelled`` (R29's stage) and ``call.reply_dropped``.
    """
    evs = list(events)
    tids = {name: i for i, name in enumerate(apartments(evs), start=1)}
    end = max((_us(e) for e in evs), default=0.0)
    out: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "ts": 0, "pid": 1, "tid": 0,
         "args": {"name": "comsim"}}]
    for name, tid in tids.items():
        out.append({"name": "thread_name", "ph": "M", "ts": 0, "pid": 1, "tid": tid,
                    "args": {"name": name}})
        out.append({"name": "thread_sort_index", "ph": "M", "ts": 0, "pid": 1, "tid": tid,
                    "args": {"sort_index": tid}})
    body: list[dict[str, Any]] = []
    flow_ids = iter(range(1, 1 << 62))

    def track(e: Event) -> int:
        return tids[where(e)]

    def slice_(start: Event, stop: Event | None, cat: str, name: str) -> None:
        ts = _us(start)
        args = _args(start)
        if stop is None:
            args["unfinished"] = True
        else:
            args.update(_args(stop, "exc"))
        body.append({"name": name, "cat": cat, "ph": "X", "ts": ts,
                     "dur": round((_us(stop) if stop is not None else end) - ts, 3),
                     "pid": 1, "tid": track(start), "args": args})

    def flow(src: Event, dst: Event, name: str) -> None:
        fid = next(flow_ids)
        args = {"call_id": src.get("call_id")}
        body.append({"name": name, "cat": "message", "ph": "s", "id": fid, "ts": _us(src),
                     "pid": 1, "tid": track(src), "args": args})
        body.append({"name": name, "cat": "message", "ph": "f", "bp": "e", "id": fid,
                     "ts": _us(dst), "pid": 1, "tid": track(dst), "args": args})

    def instant(e: Event, name: str) -> None:
        body.append({"name": name, "cat": "cancel", "ph": "i", "s": "t", "ts": _us(e),
                     "pid": 1, "tid": track(e), "args": _args(e, "stage", "reason")})

    first_sent: dict[Any, Event] = {}   # the client's slice starts at the first send
    last_sent: dict[Any, Event] = {}    # a rejected call is sent again (R16)
    running: dict[Any, Event] = {}
    reply_from = {j: i for i, j in reply_ends(evs).items()}
    for k, e in enumerate(evs):
        kind = e.get("event")
        key = _key(e)
        method = str(e.get("method", "?"))
        if kind == "call.sent":
            first_sent.setdefault(key, e)
            last_sent[key] = e
        elif kind == "call.dispatched":
            running[key] = e
            if key in last_sent:
                flow(last_sent.pop(key), e, f"request {method}")
        elif kind == "call.returned":
            start = running.pop(key, None)
            if start is not None:
                slice_(start, e, "call", method)
        elif kind in ("call.completed", "call.reply_dropped"):
            if k in reply_from:
                flow(evs[reply_from[k]], e, f"reply {method}")
            if kind == "call.reply_dropped":
                instant(e, f"reply dropped {method}")
            elif key in first_sent:
                last_sent.pop(key, None)
                slice_(first_sent.pop(key), e, "client", f"call {method}")
        elif kind == "call.cancel_requested":
            instant(e, f"cancel {method}")
        elif kind == "call.cancelled":
            instant(e, f"cancelled ({e.get('stage', '?')}) {method}")
    for start in running.values():
        slice_(start, None, "call", str(start.get("method", "?")))
    for start in first_sent.values():
        slice_(start, None, "client", f"call {start.get('method', '?')}")
    # by time; at one time slices first, then instants (zero-length slices to Perfetto), then
    # arrows, so that an arrow finds a slice open to bind to (sort is stable: else trace order)
    rank = {"X": 0, "i": 1}
    body.sort(key=lambda ev: (ev["ts"], rank.get(ev["ph"], 2)))
    return {"traceEvents": out + body, "displayTimeUnit": "ms"}
