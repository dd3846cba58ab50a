# SPDX-License-Identifier: Apache-2.0
# The package's tests, run by ctest (so by `make test`, and by `make test-sanitize` against the
# ASan + UBSan build of the addon, with the sanitizer's runtime preloaded into node):
#  - node_<name>: Node's test runner on test/<name>.test.js, against the addon built here
#    (AGENTSYNC_ADDON) and, for the hub test, this build's agentsyncd (AGS_BIN_DIR);
#  - node_types: `tsc --strict --noEmit` of test/types/usage.ts, which uses the whole typed
#    surface of index.d.ts (and the seed's own code); node_typescript_deps installs the
#    pinned typescript and @types/node (package-lock.json) from the npm registry first.
set(_env "AGENTSYNC_ADDON=$<TARGET_FILE:agentsync_node>" "AGS_BIN_DIR=${CMAKE_BINARY_DIR}/bin")
set(_run_node_tests ON)
if(AGS_SANITIZE)
  # node itself is not instrumented: the sanitizer's runtime has to be loaded first.
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE _asan OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(IS_ABSOLUTE "${_asan}" AND EXISTS "${_asan}")
    list(APPEND _env "LD_PRELOAD=${_asan}")
  else()
    message(WARNING "no libasan.so from ${CMAKE_C_COMPILER}: the Node tests are not run in this "
                    "sanitizer build")
    set(_run_node_tests OFF)
  endif()
endif()
file(GLOB AGS_NODE_TEST_FILES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test/*.test.js)
foreach(file ${AGS_NODE_TEST_FILES})
  if(NOT _run_node_tests)
    break()
  endif()
  get_filename_component(name ${file} NAME_WE)
  add_test(NAME node_${name} COMMAND ${AGS_NODE_EXECUTABLE} --test ${file}
           WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  set_tests_properties(node_${name} PROPERTIES ENVIRONMENT "${_env}" LABELS node TIMEOUT 300)
endforeach()

find_program(AGS_NPM_EXECUTABLE npm)
if(NOT AGS_NPM_EXECUTABLE)
  message(FATAL_ERROR "npm not found (scripts/install-deps.sh installs it): the TypeScript check "
                      "needs it, or configure with -DAGS_NODE=OFF")
endif()
set(_tsdeps ${CMAKE_CURRENT_BINARY_DIR}/tsdeps)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/package.json ${_tsdeps}/package.json COPYONLY)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/package-lock.json ${_tsdeps}/package-lock.json COPYONLY)
add_test(NAME node_typescript_deps
         COMMAND ${AGS_NPM_EXECUTABLE} ci --ignore-scripts --no-audit --no-fund
         WORKING_DIRECTORY ${_tsdeps})
set_tests_properties(node_typescript_deps PROPERTIES FIXTURES_SETUP node_ts LABELS node TIMEOUT 600)
add_test(NAME node_types
         COMMAND ${AGS_NODE_EXECUTABLE} ${_tsdeps}/node_modules/typescript/bin/tsc
                 -p ${CMAKE_CURRENT_SOURCE_DIR}/test/types/tsconfig.json
                 --typeRoots ${_tsdeps}/node_modules/@types)
set_tests_properties(node_types PROPERTIES FIXTURES_REQUIRED node_ts LABELS node TIMEOUT 300)

# node_pack: `npm pack`, `npm install` of the tarball in a fresh project, and a program using the
# installed package by name (test/pack/). Not in the sanitizer build: the tarball's own build is
# the ordinary one.
find_program(AGS_GIT_EXECUTABLE git)
if(NOT AGS_SANITIZE AND AGS_GIT_EXECUTABLE AND EXISTS ${CMAKE_SOURCE_DIR}/.git)
  add_test(NAME node_pack COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test/pack/pack-install.sh)
  set_tests_properties(node_pack PROPERTIES LABELS node TIMEOUT 900)
endif()
