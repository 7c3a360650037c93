"""IVR applications of a tenant (the name an ``@ivr`` script registers under)."""

from controller.domain import Ivr
from controller.stores.children import TenantChildStore

store = TenantChildStore("ivrs", Ivr, "name")
