"""The IVR menu tree and a caller's walk through it.

A tree is data (loaded from ``telephony_adapter/config/ivr.toml``): menus
whose prompts are Asterisk sound names, and digits that lead to a sub-menu, a
queue, a self-service or an agent (``0`` by convention). ``IvrSession`` is
the caller's position in the tree as a pure state machine: the adapter tells
it what the caller did (a digit, silence) and plays/does what it answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from domain.errors import InvalidValue

ACTIONS = {"menu", "queue", "self_service", "agent", "repeat"}
SELF_SERVICES = {"work_order_status", "outage_info"}
DTMF = set("0123456789*#")


@dataclass(frozen=True)
class Option:
    action: str  # menu | queue | self_service | agent | repeat
    target: str = ""


@dataclass(frozen=True)
class Menu:
    name: str
    prompt: tuple[str, ...]
    options: Mapping[str, Option]
    timeout_s: float = 6.0
    max_retries: int = 2


@dataclass(frozen=True)
class SelfService:
    name: str  # work_order_status | outage_info
    prompt: tuple[str, ...]  # "key the number, then #"
    max_digits: int = 12


@dataclass(frozen=True)
class IvrTree:
    root: str
    menus: Mapping[str, Menu]
    agent_queue: str  # where "0" and exhausted retries lead
    self_services: Mapping[str, SelfService] = field(default_factory=dict)
    invalid_prompt: tuple[str, ...] = ("option-is-invalid",)
    timeout_prompt: tuple[str, ...] = ("please-try-again",)
    goodbye_prompt: tuple[str, ...] = ("vm-goodbye",)
    after_self_service: str = "menu"  # back to the menu the service was chosen in

    def __post_init__(self) -> None:
        if self.root not in self.menus:
            raise InvalidValue(f"IVR root menu {self.root} is not defined", field="root")
        for menu in self.menus.values():
            if not menu.prompt:
                raise InvalidValue(f"menu {menu.name} has no prompt", field="prompt")
            for digit, opt in menu.options.items():
                if len(digit) != 1 or digit not in DTMF:
                    raise InvalidValue(f"menu {menu.name}: option key {digit!r} is not one DTMF digit",
                                       field="options")
                if opt.action not in ACTIONS:
                    raise InvalidValue(f"menu {menu.name} option {digit}: unknown action {opt.action}",
                                       field="options")
                if opt.action == "menu" and opt.target not in self.menus:
                    raise InvalidValue(f"menu {menu.name} option {digit}: no menu {opt.target}",
                                       field="options")
                if opt.action == "self_service" and opt.target not in self.self_services:
                    raise InvalidValue(
                        f"menu {menu.name} option {digit}: no self-service {opt.target}",
                        field="options")
                if opt.action == "queue" and not opt.target:
                    raise InvalidValue(f"menu {menu.name} option {digit}: queue name missing",
                                       field="options")

    def queues(self) -> set[str]:
        names = {self.agent_queue}
        for menu in self.menus.values():
            names |= {o.target for o in menu.options.values() if o.action == "queue"}
        return names

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> IvrTree:
        """Build from the parsed TOML (see telephony_adapter/config/ivr.toml)."""
        try:
            ivr = data["ivr"]
            menus: dict[str, Menu] = {}
            for name, m in data.get("menus", {}).items():
                options = {}
                for digit, o in m.get("options", {}).items():
                    if isinstance(o, str):  # "queue:billing" shorthand
                        action, _, target = o.partition(":")
                        options[str(digit)] = Option(action, target)
                    else:
                        options[str(digit)] = Option(o["action"], o.get("target", ""))
                menus[name] = Menu(name=name, prompt=tuple(_sounds(m["prompt"])), options=options,
                                   timeout_s=float(m.get("timeout_s", ivr.get("timeout_s", 6))),
                                   max_retries=int(m.get("max_retries", ivr.get("max_retries", 2))))
            services = {
                name: SelfService(name=name, prompt=tuple(_sounds(s["prompt"])),
                                  max_digits=int(s.get("max_digits", 12)))
                for name, s in data.get("self_service", {}).items()
            }
            for name in services:
                if name not in SELF_SERVICES:
                    raise InvalidValue(f"unknown self-service {name}; known: {sorted(SELF_SERVICES)}",
                                       field="self_service")
            return cls(root=ivr["root"], menus=menus, agent_queue=ivr["agent_queue"],
                       self_services=services,
                       invalid_prompt=tuple(_sounds(ivr.get("invalid_prompt", "option-is-invalid"))),
                       timeout_prompt=tuple(_sounds(ivr.get("timeout_prompt", "please-try-again"))),
                       goodbye_prompt=tuple(_sounds(ivr.get("goodbye_prompt", "vm-goodbye"))))
        except KeyError as missing:
            raise InvalidValue(f"IVR configuration lacks {missing}", field=str(missing)) from None


def _sounds(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# -- what the session answers ----------------------------------------------
@dataclass(frozen=True)
class Play:
    """Play these sounds, then wait ``timeout_s`` for a digit."""

    menu: str
    sounds: tuple[str, ...]
    timeout_s: float


@dataclass(frozen=True)
class Chosen:
    """A valid option was keyed (recorded as MenuChoiceMade)."""

    menu: str
    digit: str
    option: Option


@dataclass(frozen=True)
class ToQueue:
    queue: str
    reason: str  # choice | agent | retries_exhausted


@dataclass(frozen=True)
class Lookup:
    """The caller keyed a reference for a self-service: look it up, play the
    answer, then ``session.resume()``."""

    service: str
    reference: str


@dataclass(frozen=True)
class Entered:
    """The caller is now in this menu (recorded as IvrEntered)."""

    menu: str


Step = Play | Chosen | ToQueue | Lookup | Entered


class IvrSession:
    def __init__(self, tree: IvrTree) -> None:
        self.tree = tree
        self.menu = tree.root
        self.retries = 0
        self.collecting: SelfService | None = None
        self.buffer = ""
        self.done = False

    def _enter(self, name: str) -> list[Step]:
        self.menu, self.retries, self.collecting, self.buffer = name, 0, None, ""
        m = self.tree.menus[name]
        return [Entered(name), Play(name, m.prompt, m.timeout_s)]

    def start(self) -> list[Step]:
        return self._enter(self.tree.root)

    def _replay(self, lead: tuple[str, ...]) -> list[Step]:
        m = self.tree.menus[self.menu]
        self.retries += 1
        if self.retries > m.max_retries:
            # a caller who cannot use the menu is not left to loop: an agent helps
            self.done = True
            return [ToQueue(self.tree.agent_queue, "retries_exhausted")]
        return [Play(self.menu, lead + m.prompt, m.timeout_s)]

    def digit(self, d: str) -> list[Step]:
        if self.done or d not in DTMF:
            return []
        if self.collecting is not None:
            return self._collect(d)
        m = self.tree.menus[self.menu]
        opt = m.options.get(d)
        if opt is None and d == "0":
            opt = Option("agent")
        if opt is None:
            return self._replay(self.tree.invalid_prompt)
        steps: list[Step] = [Chosen(self.menu, d, opt)]
        if opt.action == "menu":
            return steps + self._enter(opt.target)
        if opt.action == "repeat":
            return steps + [Play(self.menu, m.prompt, m.timeout_s)]
        if opt.action == "queue":
            self.done = True
            return steps + [ToQueue(opt.target, "choice")]
        if opt.action == "agent":
            self.done = True
            return steps + [ToQueue(opt.target or self.tree.agent_queue, "agent")]
        service = self.tree.self_services[opt.target]
        self.collecting, self.buffer = service, ""
        return steps + [Play(self.menu, service.prompt, m.timeout_s)]

    def _collect(self, d: str) -> list[Step]:
        assert self.collecting is not None
        service = self.collecting
        if d == "*":  # start again
            self.buffer = ""
            return [Play(self.menu, service.prompt, self.tree.menus[self.menu].timeout_s)]
        if d != "#":
            self.buffer += d
            if len(self.buffer) < service.max_digits:
                return []
        reference, self.buffer, self.collecting = self.buffer, "", None
        if not reference:
            return self._replay(self.tree.invalid_prompt)
        return [Lookup(service.name, reference)]

    def timeout(self) -> list[Step]:
        if self.done:
            return []
        if self.collecting is not None and self.buffer:
            return self._collect("#")
        return self._replay(self.tree.timeout_prompt)

    def resume(self) -> list[Step]:
        """After a self-service answer: back to the menu it was chosen in."""
        m = self.tree.menus[self.menu]
        self.retries = 0
        return [Play(self.menu, m.prompt, m.timeout_s)]
