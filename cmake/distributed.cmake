# The optional backends of zoff_dist (docs/distributed.md): Gloo (CPU) and NCCL (GPU).
#
# Note [Optional backends]
# The c10d TCPStore (rendezvous) is always in LibTorch. Gloo needs c10d's ProcessGroupGloo.hpp
# plus gloo's own headers: Debian's LibTorch uses the system gloo (package libgloo-dev); a pip
# LibTorch may or may not ship them in its include folder. NCCL is compiled in only with the CUDA
# path, from the library LibTorch itself loads: pip's nvidia-nccl-cu13 (found through python3),
# else -DZOFF_NCCL_ROOT / $NCCL_ROOT, else the CUDA toolkit. A missing backend is reported here and
# at run time (distributed.backend names what the build has), never a build failure.

find_path(ZOFF_C10D_GLOO_HEADER_DIR torch/csrc/distributed/c10d/ProcessGroupGloo.hpp HINTS ${TORCH_INCLUDE_DIRS})
find_path(ZOFF_GLOO_INCLUDE_DIR gloo/algorithm.h HINTS ${TORCH_INCLUDE_DIRS})
set(ZOFF_HAVE_GLOO OFF)
if(ZOFF_C10D_GLOO_HEADER_DIR AND ZOFF_GLOO_INCLUDE_DIR)
  set(ZOFF_HAVE_GLOO ON)
  target_include_directories(zoff_dist PRIVATE ${ZOFF_GLOO_INCLUDE_DIR})
  target_compile_definitions(zoff_dist PRIVATE ZOFF_HAVE_GLOO=1)
endif()

set(ZOFF_HAVE_NCCL OFF)
if(ZOFF_WITH_CUDA)
  set(_zoff_nccl_hints ${ZOFF_NCCL_ROOT} $ENV{NCCL_ROOT})
  # The python3 on PATH: the one whose torch scripts/gpu_build.sh configures against.
  find_program(ZOFF_PYTHON3 python3)
  if(ZOFF_PYTHON3)
    # __path__, not __file__: nvidia.nccl may be a namespace package.
    execute_process(
      COMMAND ${ZOFF_PYTHON3} -c "import nvidia.nccl as m; print(list(m.__path__)[0])"
      OUTPUT_VARIABLE _zoff_pip_nccl OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _zoff_rc)
    if(_zoff_rc EQUAL 0 AND _zoff_pip_nccl)
      list(PREPEND _zoff_nccl_hints ${_zoff_pip_nccl})
    endif()
  endif()
  find_path(ZOFF_NCCL_INCLUDE_DIR nccl.h HINTS ${_zoff_nccl_hints} PATH_SUFFIXES include NO_DEFAULT_PATH)
  find_path(ZOFF_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(ZOFF_NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${_zoff_nccl_hints} PATH_SUFFIXES lib lib64 NO_DEFAULT_PATH)
  find_library(ZOFF_NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(ZOFF_NCCL_INCLUDE_DIR AND ZOFF_NCCL_LIBRARY)
    set(ZOFF_HAVE_NCCL ON)
    target_sources(zoff_dist PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src/dist/nccl/nccl_collective.cpp)
    target_include_directories(zoff_dist PRIVATE ${ZOFF_NCCL_INCLUDE_DIR})
    target_link_libraries(zoff_dist PUBLIC ${ZOFF_NCCL_LIBRARY} CUDA::cudart)
    target_compile_definitions(zoff_dist PRIVATE ZOFF_HAVE_NCCL=1)
  endif()
endif()
message(STATUS "zoff: distributed backends: gloo ${ZOFF_HAVE_GLOO}, nccl ${ZOFF_HAVE_NCCL}"
               " (nccl: ${ZOFF_NCCL_INCLUDE_DIR} ${ZOFF_NCCL_LIBRARY})")
