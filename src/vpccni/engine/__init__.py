"""The pool engine: executes the core's warm-pool decisions through EC2 and reconciles.

One copy of what happens after ``plan_scaling`` decides (create/attach/assign/release/free with
rollback, the error policy, reconcile from IMDS with EC2 as the truth), used by the daemon's pool
manager, the cluster simulator and the planner's convergence. It works over small ports: a
:class:`~vpccni.engine.ledger.PoolLedger` (the daemon's durable IPAM service, the simulator's
fast pool, the planner's datastore), the ENI lifecycle over the EC2 port, the IMDS port, an
optional link check for the datapath and the clock.
"""

from vpccni.engine.ledger import LinkCheck, PoolLedger
from vpccni.engine.pool_engine import PoolEngine
from vpccni.engine.state import EngineState, ProvisioningPolicy

__all__ = ["EngineState", "LinkCheck", "PoolEngine", "PoolLedger", "ProvisioningPolicy"]
