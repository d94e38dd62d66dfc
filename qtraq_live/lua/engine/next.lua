-- The "next" press, and calling a chosen ticket out of order (part of a script, see lib.lua).

-- A press's idempotency key in ``queue``: its key (nil without one) and the first press's
-- answer when this is a replay.
local function replayed(queue)
  if not A.idempotency_key then return nil, nil end
  local ikey = K.idem(queue, A.idempotency_key)
  return ikey, redis.call('GET', ikey)
end

-- The ticket ``prev_id`` (the one a counter holds), if still called or serving, is done (its
-- JSON is added to ``changed``).
local function end_call(q, prev_id, changed)
  if not prev_id then return end
  local prev = ticket_hash(prev_id)
  if prev and (prev.status == 'called' or prev.status == 'serving') then
    set_ticket(prev, {prev_status = prev.status, status = 'done', done_at = NOW_S})
    learn_service_time(prev, q)
    changed[#changed + 1] = ticket_json(prev)
  end
end

-- The ticket this counter called before, if still called or serving, is done (its JSON is
-- added to ``changed``); the counter counts as seen now.
local function finish_counter(q, counter, changed)
  end_call(q, redis.call('HGET', K.counters(q.id), counter), changed)
  redis.call('HSET', K.seen(q.id), counter, NOW_S)
end

-- Ticket ``t`` (taken off the waiting set if it was there) is called to ``counter`` now; the
-- wait estimator learns from the call (lib.lua's learn_gap; ``A.utc_offset_s``: the clinic's UTC
-- offset now, which queue_engine.py sends with "next" and "call").
local function call_to(t, q, counter, changed)
  set_ticket(t, {prev_status = t.status, status = 'called', counter = counter, called_at = NOW_S})
  hold(q.id, counter, t.id)
  learn_gap(q, A.utc_offset_s, redis.call('ZCARD', K.waiting(q.id)))
  push_recent(q.clinic, t)
  changed[#changed + 1] = ticket_json(t)
  local _, ev = emit(q.clinic, 'called', q.id, changed, {queue_json(q)})
  return result(ev, t)
end

function ops.next()
  local ikey, seen = replayed(A.queue)
  if seen then return seen end
  local q = queue_hash(A.queue)
  if not q then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  if flag(q.paused) then return fail('queue_paused', 'queue ' .. A.queue .. ' is paused', 'queue') end
  local changed = {}
  finish_counter(q, A.counter, changed)
  local first = redis.call('ZRANGE', K.waiting(A.queue), 0, 0)[1]
  local out
  if first then
    local t = ticket_hash(first)
    redis.call('ZREM', K.waiting(A.queue), first)
    out = call_to(t, q, A.counter, changed)
  else
    hold(A.queue, A.counter, nil, NOW_S)
    learn_empty(q)
    local qs = queue_json(q)
    local v
    if #changed > 0 then v = emit(q.clinic, 'done', A.queue, changed, {qs}) else v = version_json(q.clinic) end
    out = '{"ok":true,"v":' .. v .. ',"ticket":null,"queue":' .. qs .. '}'
  end
  if ikey then redis.call('SET', ikey, out, 'EX', 600) end
  return out
end

-- Call this waiting, skipped or no-show ticket now, out of order; the counter's previous call
-- ends as with "next". A replay with the same idempotency key answers the first result.
function ops.call()
  local t, err = load_ticket(A.ticket)
  if not t then return err end
  local ikey, seen = replayed(t.queue)
  if seen then return seen end
  local callable = false
  for _, s in ipairs(cjson.decode(__TRANSITIONS__).call) do if s == t.status then callable = true end end
  if not callable then
    return fail('illegal_transition', 'cannot call a ticket that is ' .. t.status, 'status')
  end
  local q = queue_hash(t.queue)
  if flag(q.paused) then return fail('queue_paused', 'queue ' .. t.queue .. ' is paused', 'queue') end
  local changed = {}
  finish_counter(q, A.counter, changed)
  if t.status == 'waiting' then redis.call('ZREM', K.waiting(t.queue), t.id) end
  local out = call_to(t, q, A.counter, changed)
  if ikey then redis.call('SET', ikey, out, 'EX', 600) end
  return out
end

-- The counter closes (the doctor leaves the room): the patient it called, if still called or
-- serving, is done as "next" would finish them, and the counter leaves the open counters (busy,
-- idle and seen), so the screens drop its "now serving" and the waits count one counter fewer.
-- One event, ``counter_closed`` (its ``counter`` named). A counter that is not open (closed
-- before, or never opened) changes nothing: no event, no version, no audit record.
function ops.close_counter()
  local q = queue_hash(A.queue)
  if not q then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  local busy = redis.call('HGET', K.counters(q.id), A.counter)
  if not busy and not redis.call('ZSCORE', K.idle(q.id), A.counter) then
    return '{"ok":true,"closed":false,"v":' .. version_json(q.clinic) .. ',"ticket":null,"queue":' ..
      queue_json(q) .. '}'
  end
  local changed = {}
  end_call(q, busy, changed)
  open_counters[q.id] = nil
  redis.call('HDEL', K.counters(q.id), A.counter)
  redis.call('ZREM', K.idle(q.id), A.counter)
  redis.call('HDEL', K.seen(q.id), A.counter)
  local qs = queue_json(q)
  local v = emit(q.clinic, 'counter_closed', q.id, changed, {qs}, ',"counter":' .. jtext(A.counter))
  return '{"ok":true,"closed":true,"v":' .. v .. ',"ticket":' .. (changed[1] or 'null') .. ',"queue":' .. qs .. '}'
end
