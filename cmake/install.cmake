# SPDX-License-Identifier: Apache-2.0
# Install rules and the files made for installing (included from the top
# CMakeLists.txt, after the targets exist):
#
#   bin/agentsyncd, bin/agentsync
#   lib/libagentsync.so.0 (soname) and libagentsync.a, include/agentsync/*.h
#   lib/pkgconfig/agentsync.pc, lib/cmake/agentsync/agentsync{Config,ConfigVersion}.cmake
#   share/man/man1/agentsync.1, man5/agentsync.json.5, man8/agentsyncd.8 (scdoc, from man/*.scd)
#   share/bash-completion/completions/agentsync, share/zsh/vendor-completions/_agentsync
#     (written by `agentsync completion bash|zsh` at build time)
#   lib/systemd/system/agentsyncd.service (packaging/systemd/agentsyncd.service.in)
#   share/doc/agentsync/examples/agentsync.json, share/doc/agentsync/openapi.yaml,
#     share/doc/agentsync/pattern.schema.json
#
# `make install` (cmake --install) honours CMAKE_INSTALL_PREFIX (PREFIX= in
# the Makefile) and DESTDIR. AGS_SYSTEMD_UNIT_DIR moves the unit (default
# lib/systemd/system under the prefix; Debian 12's package uses /lib/systemd/system).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(AGS_SOVERSION 0)
set(AGS_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
    "Where the systemd unit is installed (relative to the prefix, or absolute)")

# ---- man pages (scdoc) ----
find_program(AGS_SCDOC scdoc)
option(AGS_MAN "Build the man pages (needs scdoc)" ON)
set(AGS_MAN_PAGES agentsync.1 agentsync.json.5 agentsyncd.8)
set(AGS_MAN_OUT "")
if(AGS_MAN)
  if(NOT AGS_SCDOC)
    message(FATAL_ERROR "scdoc not found: run scripts/install-deps.sh (or -DAGS_MAN=OFF)")
  endif()
  foreach(page ${AGS_MAN_PAGES})
    set(src ${CMAKE_SOURCE_DIR}/man/${page}.scd)
    set(out ${CMAKE_BINARY_DIR}/man/${page})
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND ${AGS_SCDOC} < ${src} > ${out}
      DEPENDS ${src} VERBATIM COMMENT "scdoc ${page}")
    list(APPEND AGS_MAN_OUT ${out})
    string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(man ALL DEPENDS ${AGS_MAN_OUT})
endif()

# ---- shell completions, from the CLI's own command table ----
set(AGS_COMPLETIONS ${CMAKE_BINARY_DIR}/completions/agentsync ${CMAKE_BINARY_DIR}/completions/_agentsync)
if(NOT CMAKE_CROSSCOMPILING)
  add_custom_command(OUTPUT ${AGS_COMPLETIONS}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/completions
    COMMAND sh -c "\"$1\" completion bash > \"$2\" && \"$1\" completion zsh > \"$3\"" sh
            $<TARGET_FILE:agentsync_prog> ${AGS_COMPLETIONS}
    DEPENDS agentsync_prog VERBATIM COMMENT "agentsync completion bash|zsh")
  add_custom_target(completions ALL DEPENDS ${AGS_COMPLETIONS})
  install(FILES ${CMAKE_BINARY_DIR}/completions/agentsync
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
  install(FILES ${CMAKE_BINARY_DIR}/completions/_agentsync
          DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
endif()

# ---- the systemd unit ----
set(AGS_UNIT_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
if(AGS_SYSTEMD_FOUND)
  set(AGS_UNIT_TYPE notify)
  set(AGS_UNIT_READINESS "Type=notify: the daemon sends READY=1 (sd_notify) once the node and the API listen.")
else()
  set(AGS_UNIT_TYPE exec)
  set(AGS_UNIT_READINESS "built without libsystemd, so Type=exec: check readiness with GET /healthz on the API (curl -fsS http://127.0.0.1:7433/healthz).")
endif()
configure_file(${CMAKE_SOURCE_DIR}/packaging/systemd/agentsyncd.service.in
               ${CMAKE_BINARY_DIR}/packaging/agentsyncd.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/agentsyncd.service DESTINATION ${AGS_SYSTEMD_UNIT_DIR})

# ---- programs, libraries, headers ----
install(TARGETS agentsyncd_prog agentsync_prog RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS agentsync_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_SKIP)
install(TARGETS agentsync_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_ONLY)
install(TARGETS agentsync ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/agentsync DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")

# ---- pkg-config and the CMake package ----
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(AGS_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  set(AGS_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(AGS_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(AGS_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_SOURCE_DIR}/cmake/agentsync.pc.in ${CMAKE_BINARY_DIR}/packaging/agentsync.pc
               @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/agentsync.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
set(AGS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/agentsync)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/agentsyncConfig.cmake.in
  ${CMAKE_BINARY_DIR}/packaging/agentsyncConfig.cmake INSTALL_DESTINATION ${AGS_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
# 0.x: a minor version may break the API, so only the same minor is compatible.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/packaging/agentsyncConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/packaging/agentsyncConfig.cmake
              ${CMAKE_BINARY_DIR}/packaging/agentsyncConfigVersion.cmake
        DESTINATION ${AGS_CMAKE_DIR})

# ---- documents ----
install(FILES ${CMAKE_SOURCE_DIR}/packaging/config/agentsync.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${CMAKE_SOURCE_DIR}/docs/openapi.yaml ${CMAKE_SOURCE_DIR}/docs/pattern.schema.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
