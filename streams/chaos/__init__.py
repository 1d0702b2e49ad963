"""`rapport chaos`: a fault harness over real processes (plan, truth, check, runner)."""
