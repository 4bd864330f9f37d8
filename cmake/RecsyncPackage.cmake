# The Debian package (CPack): `cpack --config build/CPackConfig.cmake -B build/package`,
# or scripts/package. What it holds and why:
#   /usr/bin/recsync, the shipped plugins (root:root 0755) in /usr/lib/recsync/plugins;
#   /etc/recsync/recsync.yaml, recsync.env (secrets, 0640 root:recsync) and rules/ as
#   conffiles (an operator's edits survive upgrades);
#   the hardened systemd unit; postinst creates the recsync system user.
install(FILES ${PROJECT_SOURCE_DIR}/packaging/recsync.yaml DESTINATION /etc/recsync PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/recsync.env DESTINATION /etc/recsync PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${PROJECT_SOURCE_DIR}/rules/contacts.yaml DESTINATION /etc/recsync/rules)
install(FILES ${PROJECT_SOURCE_DIR}/rules/schemas/contact.json DESTINATION /etc/recsync/rules/schemas)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/recsync.service DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/recsync)
install(FILES ${PROJECT_SOURCE_DIR}/rules/README.md DESTINATION share/doc/recsync RENAME rules.md)

set(conffiles ${CMAKE_BINARY_DIR}/deb/conffiles)
file(WRITE ${conffiles} "/etc/recsync/recsync.yaml\n/etc/recsync/recsync.env\n/etc/recsync/rules/contacts.yaml\n/etc/recsync/rules/schemas/contact.json\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME recsync)
set(CPACK_PACKAGE_VENDOR recsync)
set(CPACK_PACKAGE_CONTACT "recsync maintainers <recsync@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Record synchronization engine between your systems and CRMs")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_STRIP_FILES ON)  # the package carries no debug info (150 MB of it)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # the libraries' packages, found by dpkg-shlibdeps
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, procps")  # procps: /bin/kill, the unit's ExecReload
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${conffiles} ${PROJECT_SOURCE_DIR}/packaging/deb/postinst ${PROJECT_SOURCE_DIR}/packaging/deb/prerm
    ${PROJECT_SOURCE_DIR}/packaging/deb/postrm)
include(CPack)
