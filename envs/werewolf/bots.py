"""Rule-based Werewolf players. Each reads only its seat's ``View`` (its role, its own night
results, fellow wolves for a werewolf, public speech, votes and announcements).

- Seer: checks the most suspected unchecked player; once it has a result it claims seer in
  speech and reveals it ("I am the seer. player_3 is a werewolf."); votes a found wolf.
- Doctor: protects the first living player who claimed seer, else itself.
- Villager (and doctor, and the seer before a find): accuses the most suspected player and votes
  for it. Suspicion is read from public speech: a seer claim's accusation counts 3, a plain
  "I suspect" 1, a seer claim's clearing -3.
- Werewolves: share one seeded plan, so they coordinate without talking. At night they kill a
  living seer claimer, else a random non-wolf. By day they claim villager and accuse a non-wolf;
  if a seer claimer accused one of them they counter-claim seer and accuse the claimer, and both
  vote for that claimer.
"""

from __future__ import annotations

import random
import re

from agentgym.envs.werewolf.game import DOCTOR, SEER, WOLF, View

_CLAIM = re.compile(r"\bI am the seer\b", re.I)
_IS_WOLF = re.compile(r"(player_\d+) is a werewolf", re.I)
_NOT_WOLF = re.compile(r"(player_\d+) is not a werewolf", re.I)
_SUSPECT = re.compile(r"I suspect (player_\d+)", re.I)


def _rng(view: View, purpose: str) -> random.Random:
    return random.Random(f"{view.seed_key}-{view.day}-{purpose}")


def seer_claims(view: View) -> list[tuple[str, list[str], list[str]]]:
    """(claimer, accused, cleared) for every public seer claim, oldest first."""
    out = []
    for _, speaker, text in view.speeches:
        if _CLAIM.search(text):
            out.append((speaker, [p.lower() for p in _IS_WOLF.findall(text)],
                        [p.lower() for p in _NOT_WOLF.findall(text)]))
    return out


def suspicion(view: View) -> dict[str, float]:
    """Public suspicion of every living player (the seer adds what it knows for sure).

    A sole seer claimer is trusted (its accusation counts 3, its clearing -3, accusing it adds 2
    to the accuser); with rival claimers every claim counts half and each claimer is suspect."""
    score = {p: 0.0 for p in view.alive}
    claims = seer_claims(view)
    claimers = list(dict.fromkeys(c for c, _, _ in claims))
    weight = 3.0 if len(claimers) == 1 else 1.5
    for claimer, accused, cleared in claims:
        for p in accused:
            if p in score and p != claimer:
                score[p] += weight
                if p in claimers and len(claimers) == 1:
                    score[p] -= weight
        for p in cleared:
            if p in score:
                score[p] -= weight
    if len(claimers) == 1 and claimers[0] in score:
        score[claimers[0]] -= 5
    for c in claimers:
        if len(claimers) > 1 and c in score:
            score[c] += 1
    for _, speaker, text in view.speeches:
        for p in _SUSPECT.findall(text):
            if p.lower() in score and p.lower() != speaker:
                score[p.lower()] += 1
                if len(claimers) == 1 and p.lower() == claimers[0] and speaker in score:
                    score[speaker] += 2
    for p, is_wolf in view.checks.items():
        if p in score:
            score[p] = 100.0 if is_wolf else -100.0
    return score


def _most_suspected(view: View, candidates: list[str], purpose: str) -> str:
    score = suspicion(view)
    best = max(score.get(c, 0.0) for c in candidates)
    top = sorted(c for c in candidates if score.get(c, 0.0) == best)
    return _rng(view, purpose).choice(top)


def _others(view: View) -> list[str]:
    return [p for p in view.alive if p != view.me]


def _wolf_target(view: View) -> tuple[str, bool]:
    """The wolves' shared day target, and whether it is a seer claimer who accused a wolf."""
    prey = [p for p in view.alive if p not in view.wolves]
    for claimer, accused, _ in seer_claims(view):
        if claimer in prey and set(accused) & set(view.wolves):
            return claimer, True
    return _most_suspected(view, prey, "wolf-day"), False


def bot_speech(view: View) -> str:
    if view.role == WOLF:
        target, threat = _wolf_target(view)
        if threat:
            return f"I am the seer. {target} is a werewolf."
        return f"I am a villager. I suspect {target}."
    if view.role == SEER and view.checks:
        found = [p for p, w in view.checks.items() if w and p in view.alive]
        if found:
            return f"I am the seer. {found[0]} is a werewolf."
        cleared = [p for p in view.checks if p in view.alive]
        if cleared:
            suspect = _most_suspected(view, [p for p in _others(view) if p not in view.checks] or _others(view), "say")
            return f"I am the seer. {cleared[-1]} is not a werewolf. I suspect {suspect}."
    return f"I am a villager. I suspect {_most_suspected(view, _others(view), 'say')}."


def speech_options(view: View) -> list[str]:
    """The admissible speech offered in choose mode: the bot's line plus a few templates."""
    options = [bot_speech(view), "I am a villager.", "I have nothing to add."]
    options += [f"I suspect {p}." for p in _others(view)]
    return list(dict.fromkeys(options))


def bot_action(view: View) -> str:
    if view.me not in view.alive:
        return "I have nothing to add."
    if view.phase == "speech":
        return bot_speech(view)
    others = _others(view)
    if view.phase == "vote":
        if view.role == WOLF:
            return f"vote {_wolf_target(view)[0]}"
        return f"vote {_most_suspected(view, others, 'vote')}"
    if view.role == WOLF:
        prey = [p for p in view.alive if p not in view.wolves]
        claimers = [c for c, _, _ in seer_claims(view) if c in prey]
        if claimers and not any(e.startswith(f"Day {view.day - 1}: nobody died") for e in view.events):
            return f"kill {claimers[0]}"       # unless the doctor saved the claimer last night
        return f"kill {_rng(view, 'kill').choice(prey)}"
    if view.role == SEER:
        unchecked = [p for p in others if p not in view.checks] or others
        return f"check {_most_suspected(view, unchecked, 'check')}"
    if view.role == DOCTOR:
        claimers = [c for c, _, _ in seer_claims(view) if c in view.alive]
        return f"protect {claimers[0] if claimers else view.me}"
    return "sleep"
