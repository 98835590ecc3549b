/* SPDX-License-Identifier: MIT */
/* placeholder: being written */
#include "scalemetrics/log.h"
