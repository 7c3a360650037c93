"""The SIP front: Kamailio routes each tenant's traffic to the node its tenant is placed on."""
