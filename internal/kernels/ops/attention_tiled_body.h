//go:build cgo && amd64

// The body of the tiled attention kernel, written once over a vector ISA
// and included by attention_tiled_amd64.c for AVX2 (8 lanes) and AVX-512
// (16 lanes). The includer defines the vector type V, its lane count VL,
// the operations V…(), the masks M…() and the name suffix TB_ISA / target
// TB_TARGET. Every operation is the same per lane in both ISAs (the same
// FMAs in the same order, the same exp polynomial, exact transposes), so
// the two kernels give the same bits.

#define TB_CAT(a, b) a##_##b
#define TB_CAT2(a, b) TB_CAT(a, b)
#define TB(x) TB_CAT2(x, TB_ISA)
#define TB_INLINE static inline __attribute__((always_inline)) TB_TARGET
#define QS (3 * VL) /* lanes (rows) per strip */

// exp: x = n*ln2 + r (Cody-Waite), |r| <= ln2/2, e^r by its Taylor series
// to degree 7 (truncation < 6e-9 relative), times 2^n applied in two
// halves so that n in [-150, 128] cannot overflow the exponent field. Below
// -104 the result is 0 (so e^-Inf = 0).
TB_INLINE V TB(ta_exp)(V x) {
	x = VMIN(VSET1(89.0f), VMAX(VSET1(-104.0f), x));
	const V n = VROUND(VMUL(x, VSET1(1.44269504088896341f)));
	V r = VFNMA(n, VSET1(0.693359375f), x);
	r = VFNMA(n, VSET1(-2.12194440e-4f), r);
	V p = VSET1(1.0f / 5040.0f);
	p = VFMA(p, r, VSET1(1.0f / 720.0f));
	p = VFMA(p, r, VSET1(1.0f / 120.0f));
	p = VFMA(p, r, VSET1(1.0f / 24.0f));
	p = VFMA(p, r, VSET1(1.0f / 6.0f));
	p = VFMA(p, r, VSET1(0.5f));
	p = VFMA(p, r, VSET1(1.0f));
	p = VFMA(p, r, VSET1(1.0f));
	const VI ni = VCVTI(n);
	const VI k1 = VSRAI1(ni);
	const VI k2 = VSUBI(ni, k1);
	const V s1 = VPOW2(k1), s2 = VPOW2(k2);
	return VMUL(VMUL(p, s1), s2);
}

// tanh = sign(x)*(1 - 2/(e^(2|x|)+1)), a few ulps of 1 absolute.
TB_INLINE V TB(ta_tanh)(V x) {
	const V ax = VABS(x);
	const V e = TB(ta_exp)(VADD(ax, ax));
	const V t = VSUB(VSET1(1.0f), VDIV(VSET1(2.0f), VADD(e, VSET1(1.0f))));
	return VCOPYSIGN(t, x);
}

// ta_qk: st[j][l] = sum_e k[j*ks + e] * qt[e][l] for NK (1..4) keys and
// the QS lanes of a strip, e in order, one FMA per term.
TB_INLINE void TB(ta_qk)(const float *qt, const float *k, long ks, long d, float *st, const int NK) {
	V a00 = VZERO(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
	V a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
	const float *k0 = k, *k1 = k + ks, *k2 = k + 2 * ks, *k3 = k + 3 * ks;
	for (long e = 0; e < d; e++) {
		const float *qe = qt + e * QS;
		const V q0 = VLOAD(qe), q1 = VLOAD(qe + VL), q2 = VLOAD(qe + 2 * VL);
		V b = VBCAST(k0 + e);
		a00 = VFMA(b, q0, a00), a01 = VFMA(b, q1, a01), a02 = VFMA(b, q2, a02);
		if (NK > 1) {
			b = VBCAST(k1 + e);
			a10 = VFMA(b, q0, a10), a11 = VFMA(b, q1, a11), a12 = VFMA(b, q2, a12);
		}
		if (NK > 2) {
			b = VBCAST(k2 + e);
			a20 = VFMA(b, q0, a20), a21 = VFMA(b, q1, a21), a22 = VFMA(b, q2, a22);
		}
		if (NK > 3) {
			b = VBCAST(k3 + e);
			a30 = VFMA(b, q0, a30), a31 = VFMA(b, q1, a31), a32 = VFMA(b, q2, a32);
		}
	}
	VSTORE(st, a00), VSTORE(st + VL, a01), VSTORE(st + 2 * VL, a02);
	if (NK > 1) VSTORE(st + QS, a10), VSTORE(st + QS + VL, a11), VSTORE(st + QS + 2 * VL, a12);
	if (NK > 2) VSTORE(st + 2 * QS, a20), VSTORE(st + 2 * QS + VL, a21), VSTORE(st + 2 * QS + 2 * VL, a22);
	if (NK > 3) VSTORE(st + 3 * QS, a30), VSTORE(st + 3 * QS + VL, a31), VSTORE(st + 3 * QS + 2 * VL, a32);
}

// ta_pv: ot[c][l] = ot[c][l]*corr[l] + sum_j v[j*vs + c] * pt[j][l] for NC
// (1..4) channels and the QS lanes, j in order, one FMA per term.
TB_INLINE void TB(ta_pv)(const float *pt, long nb, const float *v, long vs, float *ot, V c0, V c1, V c2,
                         const int NC) {
	V a00, a01, a02, a10, a11, a12, a20, a21, a22, a30, a31, a32;
	a00 = VMUL(VLOAD(ot), c0), a01 = VMUL(VLOAD(ot + VL), c1), a02 = VMUL(VLOAD(ot + 2 * VL), c2);
	a10 = a11 = a12 = a20 = a21 = a22 = a30 = a31 = a32 = a00;
	if (NC > 1) a10 = VMUL(VLOAD(ot + QS), c0), a11 = VMUL(VLOAD(ot + QS + VL), c1), a12 = VMUL(VLOAD(ot + QS + 2 * VL), c2);
	if (NC > 2)
		a20 = VMUL(VLOAD(ot + 2 * QS), c0), a21 = VMUL(VLOAD(ot + 2 * QS + VL), c1),
		a22 = VMUL(VLOAD(ot + 2 * QS + 2 * VL), c2);
	if (NC > 3)
		a30 = VMUL(VLOAD(ot + 3 * QS), c0), a31 = VMUL(VLOAD(ot + 3 * QS + VL), c1),
		a32 = VMUL(VLOAD(ot + 3 * QS + 2 * VL), c2);
	for (long j = 0; j < nb; j++) {
		const float *pj = pt + j * QS, *vj = v + j * vs;
		const V p0 = VLOAD(pj), p1 = VLOAD(pj + VL), p2 = VLOAD(pj + 2 * VL);
		V b = VBCAST(vj);
		a00 = VFMA(b, p0, a00), a01 = VFMA(b, p1, a01), a02 = VFMA(b, p2, a02);
		if (NC > 1) {
			b = VBCAST(vj + 1);
			a10 = VFMA(b, p0, a10), a11 = VFMA(b, p1, a11), a12 = VFMA(b, p2, a12);
		}
		if (NC > 2) {
			b = VBCAST(vj + 2);
			a20 = VFMA(b, p0, a20), a21 = VFMA(b, p1, a21), a22 = VFMA(b, p2, a22);
		}
		if (NC > 3) {
			b = VBCAST(vj + 3);
			a30 = VFMA(b, p0, a30), a31 = VFMA(b, p1, a31), a32 = VFMA(b, p2, a32);
		}
	}
	VSTORE(ot, a00), VSTORE(ot + VL, a01), VSTORE(ot + 2 * VL, a02);
	if (NC > 1) VSTORE(ot + QS, a10), VSTORE(ot + QS + VL, a11), VSTORE(ot + QS + 2 * VL, a12);
	if (NC > 2) VSTORE(ot + 2 * QS, a20), VSTORE(ot + 2 * QS + VL, a21), VSTORE(ot + 2 * QS + 2 * VL, a22);
	if (NC > 3) VSTORE(ot + 3 * QS, a30), VSTORE(ot + 3 * QS + VL, a31), VSTORE(ot + 3 * QS + 2 * VL, a32);
}

// ta_scores: the raw scores of nb keys (rows ks apart) for one strip.
static TB_TARGET void TB(ta_scores)(const float *qt, const float *k, long ks, long d, long nb, float *st) {
	long j = 0;
	for (; j + 4 <= nb; j += 4) TB(ta_qk)(qt, k + j * ks, ks, d, st + j * QS, 4);
	switch (nb - j) {
	case 3: TB(ta_qk)(qt, k + j * ks, ks, d, st + j * QS, 3); break;
	case 2: TB(ta_qk)(qt, k + j * ks, ks, d, st + j * QS, 2); break;
	case 1: TB(ta_qk)(qt, k + j * ks, ks, d, st + j * QS, 1); break;
	}
}

// ta_accumulate: ot = ot*corr + P·V over nb keys (value rows vs apart).
static TB_TARGET void TB(ta_accumulate)(const float *pt, long nb, const float *v, long vs, long dv, float *ot,
                                        const float *corr) {
	const V c0 = VLOAD(corr), c1 = VLOAD(corr + VL), c2 = VLOAD(corr + 2 * VL);
	long c = 0;
	for (; c + 4 <= dv; c += 4) TB(ta_pv)(pt, nb, v + c, vs, ot + c * QS, c0, c1, c2, 4);
	switch (dv - c) {
	case 3: TB(ta_pv)(pt, nb, v + c, vs, ot + c * QS, c0, c1, c2, 3); break;
	case 2: TB(ta_pv)(pt, nb, v + c, vs, ot + c * QS, c0, c1, c2, 2); break;
	case 1: TB(ta_pv)(pt, nb, v + c, vs, ot + c * QS, c0, c1, c2, 1); break;
	}
}

// ta_softmax: for the VL lanes at u of a strip's scores st (nb keys, key
// j of the block being key cols[j] of the call): softcap, hide what a lane
// must not see (-Inf: causality, window), add the mask, then the
// online softmax step: new running max m, rescale factor corr = e^(m_old -
// m_new) (0 while nothing was seen), weights e^(s - m) in place of the
// scores, and sum = sum*corr + the weights in key order.
static TB_TARGET void TB(ta_softmax)(const mica_tattn_cfg *c, float *st, long u, long nb, const int32_t *cols,
                                     const int32_t *kpos, const float *mask, const long *li, const int32_t *lqp,
                                     int hide, float *m, float *sum, float *corr) {
	const V ninf = VSET1(-INFINITY), vcap = VSET1(c->softcap);
	const VI qp = VLOADI(lqp);
	V bmax = ninf;
	if (c->softcap == 0.0f && !hide) {
		// the scores stay as they are: only their max is needed
		for (long j = 0; j < nb; j++) bmax = VMAX(bmax, VLOAD(st + j * QS + u));
	}
	for (long j = 0; j < nb && (c->softcap != 0.0f || hide); j++) {
		float *sj = st + j * QS + u;
		V x = VLOAD(sj);
		if (c->softcap != 0.0f) x = VMUL(vcap, TB(ta_tanh)(x));
		if (hide) {
			MT hidden = MNONE();
			if (kpos) {
				const VI vk = VSET1I(kpos[cols[j]]);
				if (c->causal) hidden = MCMPGTI(vk, qp);
				// qp - kp >= window  <=>  qp - kp > window - 1
				if (c->window > 0) hidden = MOR(hidden, MCMPGTI(VSUBI(qp, vk), VSET1I(c->window - 1)));
			}
			if (mask) {
				float mv[VL];
				for (int z = 0; z < VL; z++) mv[z] = mask[li[z] * c->nkv + cols[j]];
				x = VADD(x, VLOAD(mv));
			}
			x = MBLEND(hidden, x, ninf);
		}
		VSTORE(sj, x);
		bmax = VMAX(bmax, x);
	}
	const V mo = VLOAD(m), mn = VMAX(mo, bmax);
	const V ms = MBLEND(MCMPEQ(mn, ninf), mn, VZERO());
	const V cr = TB(ta_exp)(VSUB(mo, ms));
	V sm = VMUL(VLOAD(sum), cr);
	for (long j = 0; j < nb; j++) {
		float *sj = st + j * QS + u;
		const V p = TB(ta_exp)(VSUB(VLOAD(sj), ms));
		VSTORE(sj, p);
		sm = VADD(sm, p);
	}
	VSTORE(m, mn);
	VSTORE(sum, sm);
	VSTORE(corr, cr);
}

// mica_tattn_tiles_<isa> runs tiles [t0, t1) (see AttentionTiles); scratch
// holds mica_tattn_scratch floats.
TB_TARGET void TB(mica_tattn_tiles)(const mica_tattn_cfg *c, const float *q, const void *k, const void *v,
                                    const int32_t *qpos, const int32_t *kpos, const float *mask, float *out,
                                    float *scratch, long t0, long t1) {
	const long d = c->d, dv = c->dv, nkv = c->nkv, bq = c->bq;
	const long group = c->nhead / c->nkvhead, rows = c->nq * group, tpg = (rows + bq - 1) / bq;
	float *qt = scratch, *ot = qt + (bq + TA_QSMAX) * d, *st = ot + (bq + TA_QSMAX) * dv;
	float *kc = st + TA_BKMAX * TA_QSMAX, *vc = kc + TA_BKMAX * d;
	const long bk = nkv <= TA_BKMAX ? nkv : TA_BK;
	float m[TA_MAXBQ + TA_QSMAX], sum[TA_MAXBQ + TA_QSMAX], corr[QS];
	long li[TA_MAXBQ + TA_QSMAX], lh[TA_MAXBQ + TA_QSMAX];
	int32_t lqp[TA_MAXBQ + TA_QSMAX], smin[TA_MAXBQ / QS + 1], smax[TA_MAXBQ / QS + 1], cols[TA_BKMAX];
	const int hide = (kpos && (c->causal || c->window > 0)) || mask;
	float scale = c->scale;
	if (c->softcap != 0.0f) scale /= c->softcap;
	for (long t = t0; t < t1; t++) {
		const long g = t / tpg, rho0 = ta_tile_block(t % tpg, tpg) * bq;
		const long nr = rows - rho0 < bq ? rows - rho0 : bq, ns = (nr + QS - 1) / QS;
		// lanes past nr repeat the last row: computed, never stored
		for (long l = 0; l < ns * QS; l++) {
			const long rho = rho0 + (l < nr ? l : nr - 1);
			li[l] = rho / group;
			lh[l] = g * group + rho % group;
			lqp[l] = qpos ? qpos[li[l]] : 0;
			m[l] = -INFINITY;
			sum[l] = 0.0f;
		}
		for (long s = 0; s < ns; s++) {
			smin[s] = INT32_MAX, smax[s] = INT32_MIN;
			for (long l = 0; l < QS; l++) {
				const int32_t qp = lqp[s * QS + l];
				if (qp < smin[s]) smin[s] = qp;
				if (qp > smax[s]) smax[s] = qp;
			}
		}
		// Qt = q*scale, transposed (the scale is applied once, here)
		for (long L = 0; L < ns * QS; L += 8) {
			const float *rp[8];
			for (int z = 0; z < 8; z++) rp[z] = q + li[L + z] * c->q_row + lh[L + z] * d;
			ta_pack_q(rp, d, scale, qt + (L / QS) * QS * d + L % QS, QS);
		}
		memset(ot, 0, (size_t)(ns * QS * dv) * sizeof(float));
		for (long j0 = 0; j0 < nkv; j0 += bk) {
			long nb = nkv - j0 < bk ? nkv - j0 : bk;
			// The block's keys: those of a non-negative position (a negative
			// one is an empty cell, never read: its values may be anything).
			int32_t kmin = INT32_MAX, kmax = INT32_MIN;
			long nvalid = 0;
			for (long j = 0; j < nb; j++) {
				if (kpos) {
					const int32_t kp = kpos[j0 + j];
					if (kp < 0) continue;
					if (kp < kmin) kmin = kp;
					if (kp > kmax) kmax = kp;
				}
				cols[nvalid++] = (int32_t)(j0 + j);
			}
			if (nvalid == 0) continue;
			const float *kb = (const float *)k + j0 * c->k_row + g * c->k_head;
			const float *vb = (const float *)v + j0 * c->v_row + g * c->v_head;
			long ks = c->k_row, vs = c->v_row;
			// F16 rows are converted, and a block with empty cells is
			// compacted, into kc/vc: once per tile, for its first strip
			const int gather = nvalid < nb, kcopy = c->kf16 || gather, vcopy = c->vf16 || gather;
			int copied = 0;
			nb = nvalid;
			for (long s = 0; s < ns; s++) {
				if (kpos && ((c->causal && kmin > smax[s]) ||
				             (c->window > 0 && (long)smin[s] - (long)kmax >= c->window)))
					continue; // no key of the block is visible to the strip
				if (!copied && (kcopy || vcopy)) {
					for (long j = 0; j < nb; j++) {
						const long kr = cols[j] * c->k_row + g * c->k_head, vr = cols[j] * c->v_row + g * c->v_head;
						if (c->kf16) ta_cvt(kc + j * d, (const uint16_t *)k + kr, d);
						else if (kcopy) memcpy(kc + j * d, (const float *)k + kr, (size_t)d * sizeof(float));
						if (c->vf16) ta_cvt(vc + j * dv, (const uint16_t *)v + vr, dv);
						else if (vcopy) memcpy(vc + j * dv, (const float *)v + vr, (size_t)dv * sizeof(float));
					}
					if (kcopy) kb = kc, ks = d;
					if (vcopy) vb = vc, vs = dv;
					copied = 1;
				}
				TB(ta_scores)(qt + s * QS * d, kb, ks, d, nb, st);
				for (long u = 0; u < QS; u += VL) {
					const long L = s * QS + u;
					TB(ta_softmax)(c, st, u, nb, cols, kpos, mask, li + L, lqp + L, hide, m + L, sum + L, corr + u);
				}
				TB(ta_accumulate)(st, nb, vb, vs, dv, ot + s * QS * dv, corr);
			}
		}
		for (long L = 0; L < nr; L += 8) {
			float inv[8], *rp[8];
			const int n = nr - L < 8 ? (int)(nr - L) : 8;
			for (int z = 0; z < n; z++) {
				inv[z] = sum[L + z] == 0.0f ? 0.0f : 1.0f / sum[L + z];
				rp[z] = out + li[L + z] * c->o_row + lh[L + z] * dv;
			}
			ta_store_out(rp, n, dv, ot + (L / QS) * QS * dv + L % QS, inv, QS);
		}
	}
}

#undef QS
#undef TB_INLINE
#undef TB
#undef TB_CAT2
#undef TB_CAT
