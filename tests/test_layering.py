"""The package's import graph: no cycles (lazy imports inside functions count too), and the layers stay in order."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sr_jax"


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
  """{module: the sr_jax modules it imports anywhere in its body}; `from sr_jax.x import y` counts as an import of
  sr_jax.x.y when that is a module, else of sr_jax.x."""
  modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    deps = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
      if isinstance(node, ast.Import):
        deps |= {a.name for a in node.names if a.name in modules}
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("sr_jax"):
        subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
        deps |= subs or ({node.module} & set(modules))
    graph[name] = deps - {name}
  return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

  def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(sorted(comp))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_cycle_finder_finds_a_hand_made_cycle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
  assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
  assert _cycles(import_graph()) == []


def test_train_does_not_reach_up_into_sampling_or_enhance():
  """Training stands below collaborative sampling, enhancement, evaluation and the command line (it may draw its
  loss curves with sr_jax.report.plots)."""
  above = ("sr_jax.sampling", "sr_jax.enhance", "sr_jax.report.evaluation", "sr_jax.report.html", "sr_jax.cli")
  graph = import_graph()
  bad = {m: sorted(d for d in deps if d.startswith(above))
         for m, deps in graph.items() if m.startswith("sr_jax.train")}
  assert not any(bad.values()), bad


def test_low_modules_import_nothing_above_them():
  graph = import_graph()
  for low in ("sr_jax.errors", "sr_jax.layout", "sr_jax.config", "sr_jax.spectral", "sr_jax.metrics",
              "sr_jax.resources"):
    assert graph[low] <= {"sr_jax.errors", "sr_jax.spectral"}, (low, graph[low])
