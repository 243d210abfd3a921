"""Side-by-side speed and memory of PrimeDepth and the depth estimators users choose between.

Every contender is built with random weights of its real architecture (weights do not change speed), fed a square
image of each resolution, and timed per image: median of ``repeats`` runs after ``warmup`` runs. Each
(contender, resolution) pair runs in a fresh subprocess so that its peak memory is its own:

* CPU: the process's resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs`` after the
  model is built), minus the resident set just before the first run (weights, runtime) = activation memory;
* CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation before the first run.

Marigold's v1-0 protocol (50 DDIM steps x 10 ensemble members) is extrapolated linearly from 1 x 1 and 2 x 1 runs
(``t(S, E) = E * (t11 + (S - 1) * (t21 - t11))``; the ensemble alignment solver is left out), which is exact up to
the small fixed costs and says so in the table. The text tower is left out of every contender: its output for a
fixed prompt is computed once and reused (PrimeDepth with ``caption="none"``, Marigold's empty-text embedding).

Run ``primedepth bench --help``. ``contenders`` builds each contender, ``worker`` times one (contender,
resolution) pair in its own interpreter, ``runs`` drives a whole benchmark, ``report`` writes the table, JSON and
plot, ``precision_errors`` measures each precision split against the reference vectors.
"""
