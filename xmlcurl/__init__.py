"""mod_xml_curl endpoint: every node's directory, dialplan and configuration, built from the database."""
