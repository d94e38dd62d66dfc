-- qtraq-live queue engine: every change to live queue state is one call of this script.
--
-- ARGV[1] op, ARGV[2] JSON arguments, ARGV[3] now in ms, ARGV[4] stream MAXLEN; optionally
-- ARGV[5] a stream, ARGV[6] a JSON object of fields, ARGV[7] its MAXLEN: an entry appended in
-- the same step when the change happens (the staff audit record of the press).
-- Returns JSON: {"error": code, "message": text, "field": name} or {"ok": true, ...}.
-- Everything is validated before the first write, so an error leaves no trace.
-- Key names mirror qtraq_live/redis_keys.py. Big numbers (scores) travel as strings:
-- cjson and tostring() keep only 14 significant digits.

local TRANSITIONS = cjson.decode(__TRANSITIONS__)
local EMA_ALPHA = 0.3
local COUNTER_OPEN_MS = 5 * 60 * 1000
local DEFAULT_PAUSE_S = 600
local NORMAL_OFFSET = 4000000000000000  -- urgent (priority 1) tickets sort before all normal ones

local op = ARGV[1]
local A = cjson.decode(ARGV[2])
local NOW = tonumber(ARGV[3])
local MAXLEN = ARGV[4]

local K = {}
function K.clinic(c) return 'qt:c:' .. c end
function K.version(c) return 'qt:c:' .. c .. ':v' end
function K.events(c) return 'qt:c:' .. c .. ':events' end
function K.clinic_queues(c) return 'qt:c:' .. c .. ':queues' end
function K.recent(c) return 'qt:c:' .. c .. ':recent' end
function K.arrival(c) return 'qt:c:' .. c .. ':arrival' end
function K.queue(q) return 'qt:q:' .. q end
function K.waiting(q) return 'qt:q:' .. q .. ':waiting' end
function K.counters(q) return 'qt:q:' .. q .. ':counters' end
function K.seen(q) return 'qt:q:' .. q .. ':seen' end
function K.labels(q, day) return 'qt:q:' .. q .. ':labels:' .. day end
function K.ticket(id) return 'qt:t:' .. id end
function K.token(t) return 'qt:tok:' .. t end
function K.idem(q, key) return 'qt:idem:' .. q .. ':' .. key end

local failed = false

local function fail(code, message, field)
  failed = true
  return cjson.encode({error = code, message = message, field = field})
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function num(s) return tonumber(s) or 0 end
local function flag(s) return s == '1' end
local function str_or_null(s) if s == nil or s == '' then return cjson.null end return s end

-- Counters serving this queue now: those holding a patient, and those that pressed "next"
-- within two average services (a doctor who left stops counting soon after).
local function counters_open(q, ema_s)
  local busy = {}
  local n = 0
  local held = redis.call('HGETALL', K.counters(q))
  for i = 1, #held, 2 do busy[held[i]] = true; n = n + 1 end
  local window = math.max(2 * ema_s * 1000, COUNTER_OPEN_MS)
  local flat = redis.call('HGETALL', K.seen(q))
  for i = 1, #flat, 2 do
    if not busy[flat[i]] and NOW - num(flat[i + 1]) <= window then n = n + 1 end
  end
  if n < 1 then n = 1 end
  return n
end

-- While paused, the wait grows by what is left of a typical pause (moving average of past ones).
local function pause_left_s(h)
  if not flag(h.paused) then return 0 end
  local typical = num(h.pause_ema_s)
  if typical == 0 then typical = DEFAULT_PAUSE_S end
  local left = typical - (NOW - num(h.paused_at)) / 1000
  if left < 0 then return 0 end
  return math.floor(left + 0.5)
end

local function queue_state(q)
  local h = hgetall(K.queue(q))
  return {
    id = h.id, clinic = h.clinic, name = h.name, prefix = h.prefix,
    paused = flag(h.paused), avg_service_s = num(h.avg_service_s), ema_s = num(h.ema_s),
    pause_left_s = pause_left_s(h),
    counters_open = counters_open(q, num(h.ema_s)), self_checkin = flag(h.self_checkin),
    notify_ahead = num(h.notify_ahead),
  }
end

local function clinic_state(c)
  local h = hgetall(K.clinic(c))
  return {id = h.id, name = h.name, timezone = h.timezone, mask_names = flag(h.mask_names), lang = h.lang}
end

local function ticket_state(t)
  return {
    id = num(t.id), clinic = t.clinic, queue = t.queue, label = t.label, status = t.status,
    prev_status = str_or_null(t.prev_status), priority = num(t.priority), score = t.score,
    name = str_or_null(t.name), notify = flag(t.notify), lang = str_or_null(t.lang),
    counter = str_or_null(t.counter), recalls = num(t.recalls), created_at = num(t.created_at),
    called_at = num(t.called_at), served_at = num(t.served_at), done_at = num(t.done_at),
    day = t.day, appointment_id = str_or_null(t.appointment_id), issue_ahead = num(t.issue_ahead),
  }
end

local function rank_of(t)
  if t.status ~= 'waiting' then return -1 end
  local r = redis.call('ZRANK', K.waiting(t.queue), t.id)
  if r == false then return -1 end
  return r
end

-- Append the event for one change: +1 on the clinic version, one stream entry "{v}-0".
local function emit(c, etype, queue_id, tickets, queues, extra)
  local v = redis.call('INCR', K.version(c))
  local ev = {v = v, type = etype, clinic = c, queue = queue_id or cjson.null, at = NOW,
              actor = A.actor or cjson.null, tickets = tickets, queues = queues}
  if extra then for k, val in pairs(extra) do ev[k] = val end end
  redis.call('XADD', K.events(c), 'MAXLEN', '~', MAXLEN, v .. '-0', 'e', cjson.encode(ev))
  return v
end

local function can(action, status)
  local allowed = TRANSITIONS[action]
  for _, s in ipairs(allowed) do if s == status then return true end end
  return false
end

local function load_ticket(id)
  local t = hgetall(K.ticket(id))
  if not t then return nil, fail('not_found', 'unknown ticket ' .. tostring(id), 'ticket') end
  return t
end

local function set_ticket(t, fields)
  local flat = {}
  for k, v in pairs(fields) do
    t[k] = v
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  redis.call('HSET', K.ticket(t.id), unpack(flat))
end

-- The ticket leaves its counter (if it holds one): the counter is free for the next call.
local function leave_counter(t)
  if t.counter and t.counter ~= '' then
    if redis.call('HGET', K.counters(t.queue), t.counter) == t.id then
      redis.call('HDEL', K.counters(t.queue), t.counter)
    end
  end
end

-- Moving average of service time: from call (or start of service) to done, clamped.
local function learn_service_time(t)
  local started = num(t.served_at)
  if started == 0 then started = num(t.called_at) end
  if started == 0 then return end
  local d = (NOW - started) / 1000
  if d < 5 then d = 5 end
  if d > 7200 then d = 7200 end
  local ema = num(redis.call('HGET', K.queue(t.queue), 'ema_s'))
  ema = math.floor((EMA_ALPHA * d + (1 - EMA_ALPHA) * ema) + 0.5)
  redis.call('HSET', K.queue(t.queue), 'ema_s', ema)
end

local function push_recent(c, t)
  redis.call('LPUSH', K.recent(c), cjson.encode({label = t.label, counter = t.counter, queue = t.queue, at = NOW}))
  redis.call('LTRIM', K.recent(c), 0, 19)
end

-- ``qs``: the ticket's queue state, already computed for the event (after every write).
local function result(v, t, qs)
  return cjson.encode({ok = true, v = v, ticket = ticket_state(t), rank = rank_of(t), queue = qs})
end

-- Definition changes: booleans are kept as '1'/'0' like everywhere in the hashes.
local function hset_fields(key, fields)
  local flat = {}
  for k, v in pairs(fields) do
    if type(v) == 'boolean' then v = v and '1' or '0' end
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
end

local ops = {}

function ops.create_clinic()
  if redis.call('EXISTS', K.clinic(A.id)) == 1 then return fail('conflict', 'clinic ' .. A.id .. ' exists', 'id') end
  redis.call('HSET', K.clinic(A.id), 'id', A.id, 'name', A.name, 'timezone', A.timezone,
             'mask_names', A.mask_names and '1' or '0', 'lang', A.lang, 'created_at', NOW)
  redis.call('SADD', 'qt:clinics', A.id)
  local v = emit(A.id, 'clinic_created', nil, {}, {}, {clinic_state = clinic_state(A.id)})
  return cjson.encode({ok = true, v = v, clinic = clinic_state(A.id)})
end

function ops.update_clinic()
  if redis.call('EXISTS', K.clinic(A.id)) == 0 then return fail('not_found', 'unknown clinic ' .. A.id, 'clinic') end
  hset_fields(K.clinic(A.id), A.fields)
  local v = emit(A.id, 'clinic_updated', nil, {}, {}, {clinic_state = clinic_state(A.id)})
  return cjson.encode({ok = true, v = v, clinic = clinic_state(A.id)})
end

function ops.create_queue()
  if redis.call('EXISTS', K.clinic(A.clinic)) == 0 then return fail('not_found', 'unknown clinic ' .. A.clinic, 'clinic') end
  if redis.call('EXISTS', K.queue(A.id)) == 1 then return fail('conflict', 'queue ' .. A.id .. ' exists', 'id') end
  redis.call('HSET', K.queue(A.id), 'id', A.id, 'clinic', A.clinic, 'name', A.name, 'prefix', A.prefix,
             'avg_service_s', A.avg_service_s, 'ema_s', A.avg_service_s, 'paused', '0',
             'self_checkin', A.self_checkin and '1' or '0', 'notify_ahead', A.notify_ahead, 'created_at', NOW)
  redis.call('ZADD', K.clinic_queues(A.clinic), redis.call('ZCARD', K.clinic_queues(A.clinic)), A.id)
  local v = emit(A.clinic, 'queue_created', A.id, {}, {queue_state(A.id)})
  return cjson.encode({ok = true, v = v, queue = queue_state(A.id)})
end

function ops.update_queue()
  local q = hgetall(K.queue(A.id))
  if not q then return fail('not_found', 'unknown queue ' .. A.id, 'queue') end
  hset_fields(K.queue(A.id), A.fields)
  local v = emit(q.clinic, 'queue_updated', A.id, {}, {queue_state(A.id)})
  return cjson.encode({ok = true, v = v, queue = queue_state(A.id)})
end

local function set_paused(paused, etype)
  local q = hgetall(K.queue(A.queue))
  if not q then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  if flag(q.paused) == paused then
    return cjson.encode({ok = true, v = num(redis.call('GET', K.version(q.clinic))), queue = queue_state(A.queue)})
  end
  if paused then
    redis.call('HSET', K.queue(A.queue), 'paused', '1', 'paused_at', NOW)
  else
    local took = (NOW - num(q.paused_at)) / 1000
    local typical = num(q.pause_ema_s)
    if typical == 0 then typical = took else typical = EMA_ALPHA * took + (1 - EMA_ALPHA) * typical end
    redis.call('HSET', K.queue(A.queue), 'paused', '0', 'pause_ema_s', math.floor(typical + 0.5))
  end
  local v = emit(q.clinic, etype, A.queue, {}, {queue_state(A.queue)})
  return cjson.encode({ok = true, v = v, queue = queue_state(A.queue)})
end

function ops.pause() return set_paused(true, 'paused') end
function ops.resume() return set_paused(false, 'resumed') end

function ops.issue()
  local q = hgetall(K.queue(A.queue))
  if not q then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  local id = A.id
  if id then
    if redis.call('EXISTS', K.ticket(id)) == 1 then return fail('conflict', 'ticket ' .. id .. ' exists', 'id') end
  else
    id = tostring(redis.call('INCR', 'qt:seq:ticket'))
  end
  local n = redis.call('INCR', K.labels(A.queue, A.day))
  redis.call('EXPIRE', K.labels(A.queue, A.day), 3 * 86400)
  local label = q.prefix .. '-' .. string.format('%03d', n)
  -- arrival stamp in µs-like units, strictly increasing per clinic so order is total
  local arrival
  if A.arrival_ms then
    arrival = A.arrival_ms * 1000 + (tonumber(id) % 1000)
  else
    arrival = NOW * 1000
    local last = num(redis.call('GET', K.arrival(q.clinic)))
    if arrival <= last then arrival = last + 1 end
    redis.call('SET', K.arrival(q.clinic), string.format('%.0f', arrival))
  end
  local score = arrival
  if A.priority == 0 then score = score + NORMAL_OFFSET end
  local t = {
    id = id, clinic = q.clinic, queue = A.queue, label = label, status = 'waiting', prev_status = '',
    priority = tostring(A.priority), score = string.format('%.0f', score), name = A.name or '',
    notify = A.notify and '1' or '0', lang = A.lang or '', counter = '', recalls = '0',
    created_at = tostring(NOW), called_at = '0', served_at = '0', done_at = '0', day = A.day,
    appointment_id = A.appointment_id or '', token = A.token,
  }
  redis.call('ZADD', K.waiting(A.queue), t.score, id)
  t.issue_ahead = tostring(redis.call('ZRANK', K.waiting(A.queue), id))  -- for ETA quality (predicted vs real)
  set_ticket({id = id}, t)
  redis.call('SET', K.token(A.token), id)
  local qs = queue_state(A.queue)
  local v = emit(q.clinic, 'issued', A.queue, {ticket_state(t)}, {qs})
  return result(v, t, qs)
end

function ops.next()
  local ikey
  if A.idempotency_key then
    ikey = K.idem(A.queue, A.idempotency_key)
    local seen = redis.call('GET', ikey)
    if seen then return seen end
  end
  local q = hgetall(K.queue(A.queue))
  if not q then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  if flag(q.paused) then return fail('queue_paused', 'queue ' .. A.queue .. ' is paused', 'queue') end
  local changed = {}
  local prev_id = redis.call('HGET', K.counters(A.queue), A.counter)
  if prev_id then
    local prev = hgetall(K.ticket(prev_id))
    if prev and (prev.status == 'called' or prev.status == 'serving') then
      set_ticket(prev, {prev_status = prev.status, status = 'done', done_at = tostring(NOW)})
      learn_service_time(prev)
      changed[#changed + 1] = ticket_state(prev)
    end
    redis.call('HDEL', K.counters(A.queue), A.counter)
  end
  redis.call('HSET', K.seen(A.queue), A.counter, NOW)
  local first = redis.call('ZRANGE', K.waiting(A.queue), 0, 0)[1]
  local out
  if first then
    local t = hgetall(K.ticket(first))
    redis.call('ZREM', K.waiting(A.queue), first)
    set_ticket(t, {prev_status = t.status, status = 'called', counter = A.counter, called_at = tostring(NOW)})
    redis.call('HSET', K.counters(A.queue), A.counter, first)
    push_recent(q.clinic, t)
    changed[#changed + 1] = ticket_state(t)
    local qs = queue_state(A.queue)
    local v = emit(q.clinic, 'called', A.queue, changed, {qs})
    out = result(v, t, qs)
  elseif #changed > 0 then
    local v = emit(q.clinic, 'done', A.queue, changed, {queue_state(A.queue)})
    out = cjson.encode({ok = true, v = v, ticket = cjson.null, queue = queue_state(A.queue)})
  else
    out = cjson.encode({ok = true, v = num(redis.call('GET', K.version(q.clinic))), ticket = cjson.null,
                        queue = queue_state(A.queue)})
  end
  if ikey then redis.call('SET', ikey, out, 'EX', 600) end
  return out
end

-- recall, serve, skip, no_show, done, cancel, requeue: one ticket, one transition.
local function simple(action, etype, apply)
  local t, err = load_ticket(A.ticket)
  if not t then return err end
  if not can(action, t.status) then
    return fail('illegal_transition', 'cannot ' .. action .. ' a ticket that is ' .. t.status, 'status')
  end
  local fields = {prev_status = t.status}
  apply(t, fields)
  set_ticket(t, fields)
  local qs = queue_state(t.queue)
  local v = emit(t.clinic, etype, t.queue, {ticket_state(t)}, {qs})
  return result(v, t, qs)
end

function ops.recall()
  return simple('recall', 'recalled', function(t, f)
    f.recalls = tostring(num(t.recalls) + 1)
    t.recalls = f.recalls
    push_recent(t.clinic, t)
  end)
end

function ops.serve()
  return simple('serve', 'serving', function(t, f) f.status = 'serving'; f.served_at = tostring(NOW) end)
end

function ops.skip()
  return simple('skip', 'skipped', function(t, f) leave_counter(t); f.status = 'skipped' end)
end

function ops.no_show()
  return simple('no_show', 'no_show', function(t, f) leave_counter(t); f.status = 'no_show' end)
end

function ops.done()
  return simple('done', 'done', function(t, f)
    leave_counter(t); learn_service_time(t); f.status = 'done'; f.done_at = tostring(NOW)
  end)
end

function ops.cancel()
  return simple('cancel', 'cancelled', function(t, f)
    if t.status == 'waiting' then redis.call('ZREM', K.waiting(t.queue), t.id) end
    leave_counter(t); f.status = 'cancelled'; f.done_at = tostring(NOW)
  end)
end

function ops.requeue()
  return simple('requeue', 'requeued', function(t, f)
    leave_counter(t)
    redis.call('ZADD', K.waiting(t.queue), t.score, t.id)
    f.status = 'waiting'; f.counter = ''; f.called_at = '0'; f.served_at = '0'
  end)
end

function ops.transfer()
  local t, err = load_ticket(A.ticket)
  if not t then return err end
  local to = hgetall(K.queue(A.to_queue))
  if not to then return fail('not_found', 'unknown queue ' .. A.to_queue, 'queue') end
  if to.clinic ~= t.clinic then return fail('invalid_field', 'queue ' .. A.to_queue .. ' is in another clinic', 'queue') end
  if to.id == t.queue then return fail('illegal_transition', 'ticket is already in queue ' .. to.id, 'queue') end
  if not can('transfer', t.status) then
    return fail('illegal_transition', 'cannot transfer a ticket that is ' .. t.status, 'status')
  end
  local from = t.queue
  if t.status == 'waiting' then redis.call('ZREM', K.waiting(from), t.id) end
  leave_counter(t)
  set_ticket(t, {prev_status = t.status, status = 'waiting', queue = to.id, counter = '', called_at = '0', served_at = '0'})
  redis.call('ZADD', K.waiting(to.id), t.score, t.id)
  local qs = queue_state(to.id)
  local v = emit(t.clinic, 'transferred', to.id, {ticket_state(t)}, {queue_state(from), qs}, {from_queue = from})
  return result(v, t, qs)
end

-- Reads: consistent with their version because the script runs atomically.

local function queue_view(qid)
  local qs = queue_state(qid)
  local waiting = {}
  for _, id in ipairs(redis.call('ZRANGE', K.waiting(qid), 0, -1)) do
    waiting[#waiting + 1] = ticket_state(hgetall(K.ticket(id)))
  end
  local serving = {}
  local flat = redis.call('HGETALL', K.counters(qid))
  for i = 2, #flat, 2 do
    local t = hgetall(K.ticket(flat[i]))
    if t then serving[#serving + 1] = ticket_state(t) end
  end
  qs.waiting = waiting
  qs.now_serving = serving
  return qs
end

function ops.queue_snapshot()
  local clinic = redis.call('HGET', K.queue(A.queue), 'clinic')
  if not clinic then return fail('not_found', 'unknown queue ' .. A.queue, 'queue') end
  return cjson.encode({ok = true, v = num(redis.call('GET', K.version(clinic))), queue = queue_view(A.queue)})
end

function ops.clinic_snapshot()
  if redis.call('EXISTS', K.clinic(A.clinic)) == 0 then return fail('not_found', 'unknown clinic ' .. A.clinic, 'clinic') end
  local queues = {}
  for _, qid in ipairs(redis.call('ZRANGE', K.clinic_queues(A.clinic), 0, -1)) do
    queues[#queues + 1] = queue_view(qid)
  end
  local recent = {}
  for _, r in ipairs(redis.call('LRANGE', K.recent(A.clinic), 0, 19)) do recent[#recent + 1] = cjson.decode(r) end
  return cjson.encode({ok = true, v = num(redis.call('GET', K.version(A.clinic))), clinic = clinic_state(A.clinic),
                       queues = queues, recent = recent})
end

function ops.ticket()
  local id = A.ticket
  if A.token then
    id = redis.call('GET', K.token(A.token))
    if not id then return fail('not_found', 'unknown ticket token', 'token') end
  end
  local t, err = load_ticket(id)
  if not t then return err end
  return cjson.encode({ok = true, v = num(redis.call('GET', K.version(t.clinic))), ticket = ticket_state(t),
                       rank = rank_of(t), queue = queue_state(t.queue), token = t.token})
end

local fn = ops[op]
if not fn then return fail('invalid_field', 'unknown operation ' .. tostring(op), 'op') end
local out = fn()
if ARGV[5] and not failed then
  local fields = {}
  for k, v in pairs(cjson.decode(ARGV[6])) do
    fields[#fields + 1] = k
    fields[#fields + 1] = v
  end
  redis.call('XADD', ARGV[5], 'MAXLEN', '~', ARGV[7], '*', unpack(fields))
end
return out
