# The installed tapkit (`cmake --install build --prefix P`): the command-line tools in P/bin, the
# libraries an outside project links to replay captures in its tests (the replay library, the
# GoogleTest helper and every library of ours they link) in P/lib, their public headers in
# P/include under the paths users write ("replay/replay.h", "format/exchange.h"), and the CMake
# package P/lib/cmake/tapkit (tapkitConfig.cmake, its version file, the targets as tapkit::NAME
# for tapkit_NAME). README.md, "Your capture in your test suite", shows an outside project using it.
#
# What is installed is computed, not listed: the link closure of the root libraries below (the
# libraries are static, so private dependencies are part of what a user links), the public
# headers of the root libraries and every project header those include, and one
# find_dependency (or pkg_check_modules) per third-party target in the closure. A third-party
# target this file cannot map, or a library linked by file path, stops the configuration with a
# message naming it: the installed package would not link otherwise.
#
# Included at the end of the top-level CMakeLists.txt, once every target exists.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The libraries users link: the replay API, the mock server (tapkit_serve) and the format
# libraries they expose. One that does not exist in this configuration is left out.
set(_tapkit_core_roots tapkit_replay tapkit_compare tapkit_report tapkit_replay_capture
    tapkit_serve tapkit_format tapkit_select tapkit_redact tapkit_content tapkit_http_text)
# The GoogleTest helpers: exported on their own, so a user without GoogleTest still finds tapkit.
set(_tapkit_testing_roots tapkit_replay_testing tapkit_serve_testing)

# Public headers of each root library (project-relative). The project headers they include are
# added by following their #include lines.
set(_tapkit_headers_tapkit_format
    format/async_writer.h format/codec.h format/exchange.h format/exchange_view.h format/file.h
    format/format.h format/metadata.h format/order.h format/reader.h format/writer.h
    format/program.h)
set(_tapkit_headers_tapkit_select format/select.h)
set(_tapkit_headers_tapkit_redact format/redact.h)
set(_tapkit_headers_tapkit_content format/content_coding.h)
set(_tapkit_headers_tapkit_http_text format/http_text.h)
set(_tapkit_headers_tapkit_replay replay/replay.h replay/compare.h)
set(_tapkit_headers_tapkit_compare replay/compare.h)
set(_tapkit_headers_tapkit_report replay/report.h)
set(_tapkit_headers_tapkit_replay_capture replay/report.h)
set(_tapkit_headers_tapkit_replay_testing replay/testing.h)
set(_tapkit_headers_tapkit_serve replay/serve.h)
set(_tapkit_headers_tapkit_serve_testing replay/serve_testing.h)
# Generated headers live in the build tree (format/CMakeLists.txt): the FlatBuffers schema's
# header and program.h (version and exit codes).
set(_tapkit_generated_dir ${PROJECT_BINARY_DIR}/format/generated)
set(_tapkit_generated_headers format/tap_generated.h format/program.h)

# Third-party targets -> what the installed config does to recreate them.
function(_tapkit_dependency_for target out)
  set(pkg_re2 re2)
  set(pkg_xxhash libxxhash)
  set(pkg_brotli "libbrotlidec libbrotlienc")
  set(pkg_pcap libpcap)
  set(pkg_libcap libcap)
  if(target MATCHES "^PkgConfig::(.+)$")
    string(TOLOWER "${CMAKE_MATCH_1}" prefix_lower)
    if(NOT DEFINED pkg_${prefix_lower})
      message(FATAL_ERROR "cmake/TapkitPackage.cmake: the installed package links ${target}; "
                          "add its pkg-config module names to _tapkit_dependency_for")
    endif()
    set(line "find_dependency(PkgConfig)"
        "if(NOT TARGET ${target})\n  pkg_check_modules(${CMAKE_MATCH_1} REQUIRED IMPORTED_TARGET ${pkg_${prefix_lower}})\nendif()")
  elseif(target MATCHES "^absl::")
    set(line "find_dependency(absl CONFIG)")
  elseif(target MATCHES "^zstd::")
    set(line "find_dependency(zstd CONFIG)")
  elseif(target MATCHES "^flatbuffers::")
    set(line "find_dependency(FlatBuffers CONFIG)")
  elseif(target MATCHES "^nlohmann_json::")
    set(line "find_dependency(nlohmann_json)")
  elseif(target MATCHES "^Boost::(.+)$")
    set(line "find_dependency(Boost COMPONENTS ${CMAKE_MATCH_1})")
  elseif(target MATCHES "^CURL::")
    set(line "find_dependency(CURL)")
  elseif(target STREQUAL "yaml-cpp" OR target MATCHES "^yaml-cpp::")
    set(line "find_dependency(yaml-cpp)")
  elseif(target MATCHES "^GTest::")
    set(line "find_dependency(GTest)")
  elseif(target MATCHES "^Threads::")
    set(line "find_dependency(Threads)")
  elseif(target MATCHES "^OpenSSL::")
    set(line "find_dependency(OpenSSL)")
  elseif(target MATCHES "^ZLIB::")
    set(line "find_dependency(ZLIB)")
  else()
    message(FATAL_ERROR "cmake/TapkitPackage.cmake: the installed package links '${target}'; "
                        "link an imported target and say in _tapkit_dependency_for how the "
                        "installed config finds it")
  endif()
  set(${out} "${line}" PARENT_SCOPE)
endfunction()

# The link closure of `roots`: our libraries into `out_ours`, third-party targets into
# `out_theirs`. Static libraries carry their private dependencies into every link.
function(_tapkit_link_closure out_ours out_theirs)
  set(ours "")
  set(theirs "")
  set(queue ${ARGN})
  while(queue)
    list(POP_FRONT queue t)
    if(t IN_LIST ours)
      continue()
    endif()
    list(APPEND ours ${t})
    get_target_property(direct ${t} LINK_LIBRARIES)
    get_target_property(iface ${t} INTERFACE_LINK_LIBRARIES)
    foreach(dep IN LISTS direct iface)
      if(dep MATCHES "-NOTFOUND$" OR dep STREQUAL "" OR dep MATCHES "^::@")
        continue()
      endif()
      if(dep MATCHES "^\\$<LINK_ONLY:(.+)>$")
        set(dep "${CMAKE_MATCH_1}")
      endif()
      if(dep MATCHES "^\\$<")
        message(FATAL_ERROR "cmake/TapkitPackage.cmake: ${t} links '${dep}', a generator "
                            "expression this file cannot follow")
      endif()
      # Imported targets are visible only in the directory that found them (ZLIB::ZLIB in
      # format/): a name that is not one of our targets here is a third-party one, and
      # _tapkit_dependency_for refuses what it cannot map (a library linked by path, say).
      set(imported TRUE)
      if(TARGET ${dep})
        get_target_property(imported ${dep} IMPORTED)
      endif()
      if(imported)
        list(APPEND theirs ${dep})
      else()
        list(APPEND queue ${dep})
      endif()
    endforeach()
  endwhile()
  list(REMOVE_DUPLICATES theirs)
  set(${out_ours} "${ours}" PARENT_SCOPE)
  set(${out_theirs} "${theirs}" PARENT_SCOPE)
endfunction()

# `headers` (project-relative) and every project header they include, transitively.
function(_tapkit_header_closure out)
  set(done "")
  set(queue ${ARGN})
  while(queue)
    list(POP_FRONT queue h)
    if(h IN_LIST done)
      continue()
    endif()
    list(APPEND done ${h})
    if(h IN_LIST _tapkit_generated_headers)
      continue()  # generated: includes only third-party headers
    endif()
    if(NOT EXISTS ${PROJECT_SOURCE_DIR}/${h})
      message(FATAL_ERROR "cmake/TapkitPackage.cmake: public header ${h} does not exist")
    endif()
    file(STRINGS ${PROJECT_SOURCE_DIR}/${h} includes
         REGEX "^#include \"(format|replay|controlplane|recorder|sidecar)/")
    foreach(line IN LISTS includes)
      string(REGEX REPLACE "^#include \"([^\"]+)\".*$" "\\1" inc "${line}")
      list(APPEND queue ${inc})
    endforeach()
  endwhile()
  set(${out} "${done}" PARENT_SCOPE)
endfunction()

# Our libraries: include directories from the source and build trees only while building; the
# installed targets use P/include. The export name drops the tapkit_ prefix (tapkit::format).
function(_tapkit_prepare_export target)
  get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  set(new_dirs "")
  foreach(d IN LISTS dirs)
    if(d MATCHES "-NOTFOUND$")
      continue()
    endif()
    if(d MATCHES "^\\$<")
      list(APPEND new_dirs "${d}")
    else()
      list(APPEND new_dirs "$<BUILD_INTERFACE:${d}>")
    endif()
  endforeach()
  list(APPEND new_dirs "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${new_dirs}")
  string(REGEX REPLACE "^tapkit_" "" export_name ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${export_name})
endfunction()

function(_tapkit_existing out)
  set(found "")
  foreach(t IN LISTS ARGN)
    if(TARGET ${t})
      list(APPEND found ${t})
    endif()
  endforeach()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

_tapkit_existing(core_roots ${_tapkit_core_roots})
_tapkit_existing(testing_roots ${_tapkit_testing_roots})
_tapkit_link_closure(core_libs core_deps ${core_roots})
_tapkit_link_closure(all_libs all_deps ${core_roots} ${testing_roots})
set(testing_libs ${all_libs})
set(testing_deps ${all_deps})
if(core_libs)
  list(REMOVE_ITEM testing_libs ${core_libs})
endif()
if(core_deps)
  list(REMOVE_ITEM testing_deps ${core_deps})
endif()

foreach(t IN LISTS all_libs)
  _tapkit_prepare_export(${t})
endforeach()
# Headers of the libraries users link; the libraries only linked through them (tapkit_render
# behind the reports, say) are installed as archives without their headers.
set(public_headers "")
foreach(t IN LISTS core_roots testing_roots)
  if(NOT DEFINED _tapkit_headers_${t})
    message(FATAL_ERROR "cmake/TapkitPackage.cmake: list the public headers of ${t}")
  endif()
  list(APPEND public_headers ${_tapkit_headers_${t}})
endforeach()
_tapkit_header_closure(installed_headers ${public_headers})
foreach(h IN LISTS installed_headers)
  get_filename_component(dir ${h} DIRECTORY)
  if(h IN_LIST _tapkit_generated_headers)
    install(FILES ${_tapkit_generated_dir}/${h} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${dir})
  else()
    install(FILES ${PROJECT_SOURCE_DIR}/${h} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${dir})
  endif()
endforeach()

set(TAPKIT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tapkit)
install(TARGETS ${core_libs} EXPORT tapkitTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT tapkitTargets NAMESPACE tapkit:: DESTINATION ${TAPKIT_CMAKE_DIR})
if(testing_libs)
  install(TARGETS ${testing_libs} EXPORT tapkitTestingTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT tapkitTestingTargets NAMESPACE tapkit:: DESTINATION ${TAPKIT_CMAKE_DIR})
endif()

# The config's find_dependency lines, one per third-party package, in a stable order.
function(_tapkit_dependency_lines out)
  set(lines "")
  foreach(dep IN LISTS ARGN)
    _tapkit_dependency_for(${dep} line)
    list(APPEND lines "${line}")
  endforeach()
  list(REMOVE_DUPLICATES lines)
  list(JOIN lines "\n" text)
  set(${out} "${text}" PARENT_SCOPE)
endfunction()
_tapkit_dependency_lines(TAPKIT_CORE_DEPENDENCIES ${core_deps})
_tapkit_dependency_lines(TAPKIT_TESTING_DEPENDENCIES ${testing_deps})
if(testing_libs)
  set(TAPKIT_HAS_TESTING TRUE)
else()
  set(TAPKIT_HAS_TESTING FALSE)
endif()

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tapkitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/tapkitConfig.cmake INSTALL_DESTINATION ${TAPKIT_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/tapkitConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/tapkitConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/tapkitConfigVersion.cmake
        DESTINATION ${TAPKIT_CMAKE_DIR})

# The command-line tools (no tests, benchmarks or fuzz targets).
_tapkit_existing(tools taprec tapcat tapfilter tapreplay tap-sidecar tap-controlplane)
install(TARGETS ${tools} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Everything `cmake --install` copies, built: `cmake --build build --target tapkit_package`.
add_custom_target(tapkit_package)
add_dependencies(tapkit_package ${all_libs} ${tools})

list(JOIN core_libs " " _core_text)
list(JOIN testing_libs " " _testing_text)
message(STATUS "tapkit package: libraries ${_core_text}; testing ${_testing_text}")
