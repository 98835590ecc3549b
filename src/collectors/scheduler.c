/* SPDX-License-Identifier: MIT */
/* placeholder: being written */
#include "scalemetrics/scheduler.h"
