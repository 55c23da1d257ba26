"""Run a scenario with a seed: build the nodes, plan the faults, deliver events until every
honest node has committed the scenario's heights (or the liveness deadline passes), with the
checker watching. `run` returns a Result; `check` raises SimFailure on any problem;
`replay(seed, scenario)` is `run` again: the same seed gives the same event trace hash.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from consensus.bft.validators import ValidatorSet
from consensus.state import Validator
from tests.sim.byzantine import BEHAVIOURS, Coalition, SplitBrain
from tests.sim.checker import Checker, SimFailure
from tests.sim.network import Control, LinkModel, Message, Network, Tick, Timer
from tests.sim.node import NodeCrashed, SimNode
from tests.sim.scenarios import SCENARIOS, Scenario
from tests.sim.storage import Durable
from tests.sim.wire import genesis_state, validator_address

HEIGHT_BUDGET_MS = 20_000  # virtual time allowed per height once the last fault is over
AFTER_FAULTS = 2  # heights every honest node must commit after the last fault is over
MAX_EVENTS = 2_000_000


@dataclass
class Result:
    scenario: str
    seed: int
    validators: int
    byzantine: int
    heights: int  # heights every honest node committed
    decided: int  # heights some honest node committed
    max_round: int
    synced: int
    evidence: int  # Byzantine validators honest nodes reported
    slashed: int  # ... and that blocks slashed
    violations: list[str]  # safety
    liveness: str | None
    trace_hash: str
    virtual_ms: int
    events: int
    stats: dict[str, int]

    @property
    def problems(self) -> list[str]:
        return self.violations + ([self.liveness] if self.liveness else [])

    @property
    def failed(self) -> bool:
        return bool(self.problems)


def get_scenario(scenario: Scenario | str) -> Scenario:
    """A Scenario, or its name; `name@nK` is that scenario on K equal-stake validators."""
    if isinstance(scenario, Scenario):
        return scenario
    name, _, count = scenario.partition("@n")
    base = SCENARIOS[name]
    return base.with_validators(int(count)) if count else base


class Simulation:
    def __init__(self, seed: int, scenario: Scenario) -> None:
        self.seed, self.scenario = seed, scenario
        self.rng = random.Random(seed)
        self.stats: Counter[str] = Counter()
        stakes = scenario.stake_list()
        self.roles = self.assign_roles(stakes)
        link = LinkModel(self.rng.uniform(*scenario.drop), scenario.delay_ms[0],
                         scenario.delay_ms[1], scenario.duplicate)
        plan = [(v, self.roles.get(v, "honest")) for v in range(len(stakes))]
        plan += [(v, "twin") for v, role in self.roles.items() if role == "twin"]
        self.net = Network(self.rng, len(plan), link)
        self.checker = Checker({validator_address(v) for v in self.roles})
        self.coalition = Coalition()
        self._vsets: dict[tuple[Validator, ...], ValidatorSet] = {}
        genesis = genesis_state(stakes)
        self.nodes: list[SimNode] = []
        for endpoint, (v, role) in enumerate(plan):
            behaviour = BEHAVIOURS["honest" if role == "twin" else role](self.coalition)
            honest = role == "honest"
            self.nodes.append(SimNode(endpoint, v, self, Durable(genesis), behaviour, honest))
            if isinstance(behaviour, SplitBrain):
                self.coalition.members.add(endpoint)
        for node in self.nodes:
            node.peers = [e for e in range(len(plan)) if e != node.endpoint]
        self.target = scenario.heights  # raised when the last fault is over
        faults_end = self.plan_faults()
        if faults_end:
            self.net.control(faults_end, "faults over", self.on_faults_over)
        self.deadline = faults_end + (scenario.heights + AFTER_FAULTS) * HEIGHT_BUDGET_MS

    # --- Env (what nodes use) -----------------------------------------------------------

    def validator_set(self, validators: tuple[Validator, ...]) -> ValidatorSet:
        if validators not in self._vsets:
            self._vsets[validators] = ValidatorSet(validators)
        return self._vsets[validators]

    def crash_point(self, node: SimNode) -> None:
        if self.scenario.crash_in_sign and self.rng.random() < self.scenario.crash_in_sign:
            raise NodeCrashed(node.endpoint)

    # --- planning -----------------------------------------------------------------------

    def assign_roles(self, stakes: tuple[int, ...]) -> dict[int, str]:
        """Byzantine roles to random validators, keeping their stake below 1/3."""
        order = list(range(len(stakes)))
        self.rng.shuffle(order)
        roles: dict[int, str] = {}
        power, total = 0, sum(stakes)
        for role in self.scenario.byzantine:
            pick = next((v for v in order if v not in roles
                         and 3 * (power + stakes[v]) < total), None)
            if pick is None:
                raise ValueError(f"{self.scenario.name}: Byzantine stake would reach 1/3")
            roles[pick] = role
            power += stakes[pick]
        return roles

    def plan_faults(self) -> int:
        """Schedule partitions and crashes; return when the last of them is over."""
        rng, end = self.rng, 0
        for _ in range(self.scenario.partitions):
            start = end + rng.randint(0, 800)
            end = start + rng.randint(500, 6000)
            order = list(range(len(self.nodes)))
            rng.shuffle(order)
            cut = rng.randint(1, len(order) - 1)
            groups = [int(order.index(e) < cut) for e in range(len(order))]
            self.net.control(start, "partition", lambda g=groups: self.net.partition(g))
            self.net.control(end, "heal", self.net.heal)
        honest = [n for n in self.nodes if n.honest]
        for _ in range(self.scenario.crashes):
            node = rng.choice(honest)
            at = rng.randint(0, 1500)
            back = at + rng.randint(50, 3000)
            self.net.control(at, f"crash {node.endpoint}", lambda n=node: self.crash(n))
            self.net.control(back, f"restart {node.endpoint}", lambda n=node: self.restart(n))
            end = max(end, back)
        return end

    def on_faults_over(self) -> None:
        """Liveness after the faults: AFTER_FAULTS more heights, within the budget."""
        self.target = max(self.target, len(self.checker.blocks) + AFTER_FAULTS)

    def crash(self, node: SimNode) -> None:
        if node.alive:
            node.crash()
            self.stats["crashes"] += 1

    def restart(self, node: SimNode) -> None:
        if not node.alive:
            node.boot()

    # --- running ------------------------------------------------------------------------

    def guarded(self, action: Callable[[], None]) -> None:
        """Run a node action; a crash point inside it takes the node down until later."""
        try:
            action()
        except NodeCrashed as crashed:
            node = self.nodes[crashed.endpoint]
            node.crash()
            self.stats["crashes_in_sign"] += 1
            self.net.control(self.net.now_ms + self.rng.randint(50, 2000),
                             f"restart {node.endpoint}", lambda: self.restart(node))

    def done(self) -> bool:
        target = self.target
        if any(n.honest and n.durable.state.height < target for n in self.nodes):
            return False
        return not self.scenario.expect_evidence or bool(self.checker.evidence)

    def run(self) -> Result:
        for node in self.nodes:
            self.guarded(node.boot)
        liveness, events = None, 0
        while not self.checker.violations and not self.done():
            popped = self.net.pop()
            if popped is None or self.net.now_ms > self.deadline or events >= MAX_EVENTS:
                liveness = self.liveness_problem()
                break
            events += 1
            dest, item = popped
            if isinstance(item, Control):
                self.guarded(item.apply)
                continue
            node = self.nodes[dest]
            if not node.alive:
                continue
            if isinstance(item, Message):
                self.guarded(lambda n=node, m=item: n.on_message(m))
            elif isinstance(item, Timer):
                self.guarded(lambda n=node, t=item: n.on_timer(t))
            elif isinstance(item, Tick):
                self.guarded(lambda n=node, t=item: n.on_tick(t))
        return self.result(liveness, events)

    def liveness_problem(self) -> str:
        heights = [n.durable.state.height for n in self.nodes if n.honest]
        if min(heights) < self.target:
            return (f"liveness: honest heights {heights} short of {self.target} "
                    f"by {self.net.now_ms} ms virtual")
        return "liveness: no honest node reported the Byzantine equivocation"

    def result(self, liveness: str | None, events: int) -> Result:
        honest = [n for n in self.nodes if n.honest]
        return Result(
            scenario=self.scenario.name, seed=self.seed, validators=len(self.scenario.stake_list()),
            byzantine=len(self.roles), heights=min(n.durable.state.height for n in honest),
            decided=len(self.checker.blocks), max_round=self.checker.max_round,
            synced=self.checker.synced, evidence=len(self.checker.evidence),
            slashed=self.checker.slashed,
            violations=list(self.checker.violations), liveness=liveness,
            trace_hash=self.net.trace_hash(), virtual_ms=self.net.now_ms, events=events,
            stats=dict(sorted(self.stats.items())))


def run(seed: int, scenario: Scenario | str) -> Result:
    return Simulation(seed, get_scenario(scenario)).run()


def replay(seed: int, scenario: Scenario | str) -> Result:
    """Run `seed` again: a deterministic run, so the same trace (hash) and the same problems."""
    return run(seed, scenario)


def check(seed: int, scenario: Scenario | str) -> Result:
    """Run and raise SimFailure (naming the seed and scenario) on any problem."""
    result = run(seed, scenario)
    if result.failed:
        raise SimFailure(result.scenario, seed, result.problems)
    return result
