"""Named degradation chains: `sr-jax evaluate --chains` and `train.eval_chains` ("NAME=CHAIN;NAME=CHAIN..." or a
file of NAME=CHAIN lines), and the checks a chain passes before anything is read or compiled: that it parses, that
its steps have what they need to run, and that it makes the model's rate."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from sr_jax.errors import UserError

# sr_jax.data.degrade (scipy) takes about a second to import: it is imported where it is used, so that a bad flag is
# reported at once.
if TYPE_CHECKING:
  from sr_jax.data import degrade as degrade_lib

CHAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # a --chains name: also a folder-name part and a table label


def eval_rate(config, chain: degrade_lib.Chain) -> int:
  """The rate the model makes (config.data.rate), which a sample step's HIGH must equal, and at which every step of
  the chain must be able to run (else `UserError`)."""
  from sr_jax.data import degrade as degrade_lib  # noqa: PLC0415

  rate = int(config.data.rate)
  high = degrade_lib.chain_rates(chain)[1]
  if high is not None and high != rate:
    raise UserError(f"the chain {chain!r} makes {high} Hz targets but the model makes {rate} Hz audio: use a "
                    f"sample step 'sample LOW {rate}'")
  check_chain(chain, rate)
  return rate


def check_chain(chain: degrade_lib.Chain, rate: int | None = None) -> tuple[degrade_lib.Step, ...]:
  """The parsed chain, or `UserError` when it does not parse, when a step lacks what it needs to run (an optional
  package, a codec, a mix folder with audio) or, with `rate`, when a step cannot run at that rate."""
  from sr_jax.data import degrade as degrade_lib  # noqa: PLC0415

  steps = degrade_lib.parse_chain(chain)
  text = chain if isinstance(chain, str) else ",".join(map(str, steps))
  degrade_lib.check_steps(steps, rate, text, run=True)
  return steps


def parse_chains(spec: str) -> dict[str, str]:
  """{name: chain} of a --chains value: inline "NAME=CHAIN;NAME=CHAIN..." (';' between chains; a chain's steps are
  comma-separated, see `sr_jax.data.degrade`), or the path of a text file with one NAME=CHAIN a line ('#' starts a
  comment outside quotes, blank lines are skipped). Names: letters, digits, '_', '.', '+', '-', starting with a
  letter or digit, unique. Every chain must parse, be non-empty, have what its steps need to run (`check_chain`)
  and make the same target rate as the others; the chain `none` is the clean audio itself (what does the model do to
  audio with nothing to restore?). Each mistake is a one-line `UserError`."""
  from sr_jax.data import degrade as degrade_lib  # noqa: PLC0415

  if os.path.isfile(spec):
    try:
      with open(spec, encoding="utf-8") as f:
        lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
      raise UserError(f"--chains={spec}: cannot read the file ({e})") from None
    pieces = [(f"{spec} line {n}", degrade_lib.split_outside_quotes(line, "#")[0])
              for n, line in enumerate(lines, 1)]
  elif "=" in spec:
    pieces = [(f"--chains piece {n}", piece)
              for n, piece in enumerate(degrade_lib.split_outside_quotes(spec, ";"), 1)]
  else:
    raise UserError(f"--chains={spec!r} is neither a file nor NAME=CHAIN;NAME=CHAIN... (e.g. --chains='bw4k=sample "
                    "4000 16000;noise10=noise random 10')")
  chains, rates = {}, {}
  for where, piece in pieces:
    if not piece.strip():
      continue
    if "=" not in piece:
      raise UserError(f"{where}: {piece.strip()!r} is not NAME=CHAIN (chains are separated by ';' inline, by lines "
                      "in a file)")
    name, chain = (part.strip() for part in piece.split("=", 1))
    if not name:
      raise UserError(f"{where}: the chain {chain!r} has no name: write NAME={chain}")
    if not CHAIN_NAME.fullmatch(name):
      raise UserError(f"{where}: chain name {name!r} may only hold letters, digits, '_', '.', '+' and '-' (starting "
                      "with a letter or digit)")
    if name in chains:
      raise UserError(f"{where}: chain name {name!r} is given twice: each chain needs its own name")
    if not chain:
      raise UserError(f"{where}: the chain {name!r} is empty: give its degradation steps after '{name}=' (or "
                      f"'{name}={degrade_lib.NO_DEGRADATION}' for the clean audio itself)")
    try:
      steps = check_chain(chain)
    except UserError as e:
      raise UserError(f"{where}: chain {name!r}: {e}") from None
    chains[name] = chain
    high = degrade_lib.chain_rates(steps)[1]
    if high is not None:
      rates[name] = high
  if not chains:
    raise UserError(f"--chains={spec!r} names no chain: give NAME=CHAIN;NAME=CHAIN... or a file of NAME=CHAIN lines")
  if len(set(rates.values())) > 1:
    raise UserError("the chains make targets at different rates (" + ", ".join(f"{n}: {r} Hz" for n, r in
                    rates.items()) + "): one model makes one rate; give every sample step the same HIGH")
  return chains

