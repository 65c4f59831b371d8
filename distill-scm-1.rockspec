rockspec_format = "3.0"
package = "distill"
version = "scm-1"

-- An scm rockspec needs a source.url: where `luarocks build` would clone
-- the project from. The documented install, `luarocks make` in a checkout,
-- builds that checkout and never reads it. example.invalid stands for the
-- public repository, which this project does not have yet.
source = {
  url = "git+https://example.invalid/distill.git",
}

description = {
  summary = "Knowledge-distillation training engine: C tensors, autograd and FSECD for Lua 5.4",
  detailed = [[
A C engine (tensors, OpenBLAS-backed kernels, reverse-mode autograd, layers and a
fused contrastive-distillation op) with Lua 5.4 bindings. Models, data pipelines
and distillation schedules are Lua scripts on top.]],
  license = "MIT",
}

dependencies = {
  "lua >= 5.4",
  "luafilesystem",
}

external_dependencies = {
  OPENBLAS = { library = "openblas" },
  TURBOJPEG = { header = "turbojpeg.h", library = "turbojpeg" },
  ZLIB = { header = "zlib.h", library = "z" },
}

build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    OPENBLAS_LIBDIR = "$(OPENBLAS_LIBDIR)",
    TURBOJPEG_INCDIR = "$(TURBOJPEG_INCDIR)",
    TURBOJPEG_LIBDIR = "$(TURBOJPEG_LIBDIR)",
    DISTILL_INSTALL_LIBDIR = "$(LIBDIR)",
    DISTILL_INSTALL_LUADIR = "$(LUADIR)",
  },
  install = {
    bin = {
      distill = "scripts/distill",
    },
  },
}
