// Kernel IR -> LLVM IR, in two flavours (emit_llvm.h, emit_llvm_module.h):
//   cpu   the CPU kernel ABI: one function runs a range of work-groups and loops over
//         their work-items; local buffers are stack arrays; math by LLVM intrinsics
//   spir  an OpenCL kernel for the spir64 target (SPIR 1.2 bitcode, and SPIR-V through
//         the LLVM-SPIRV translator): buffers in addrspace(1), local buffers as
//         addrspace(3) globals, work-item ids and math by OpenCL built-in calls;
//         scalar Kernel IR only (vectors are scalarized first)
// Constant tables are internal constant global arrays (spir: addrspace(2)).
// Structured statements become plain CFGs; `var`s are entry-block allocas (promoted to
// registers by the optimiser); expressions free of vars and loads are emitted once per
// scope and reused.
#include "jit/emit_llvm.h"

#include <llvm/Bitcode/BitcodeWriter.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <bit>
#include <map>
#include <span>
#include <unordered_map>

#include "jit/emit_llvm_module.h"
#include "jit/emit_llvm_numeric.h"
#include "jit/kir_reuse.h"
#include "jit/kir_visitor.h"
#include "jit/legalize.h"
#include "support/error.h"

namespace moat::jit {

namespace {

using llvm::Value;
namespace le = llvm_emit;

// Whether the kernel needs work-items to run in lock-step (barriers, sub-groups).
class NeedsLockstep : public Visitor {
 public:
  bool found = false;
  void visit_barrier(const Node&) override { found = true; }
  void visit_subgroup_reduce(const Node& n) override {
    found = true;
    visit_children(n);
  }
};

class LlvmEmitter {
 public:
  LlvmEmitter(const Kernel& k, LlvmFlavour flavour, llvm::LLVMContext& ctx, const CpuFeatures& cpu)
      : k_(k), spir_(flavour == LlvmFlavour::spir), cpu_(cpu), ctx_(ctx), module_(std::make_unique<llvm::Module>(k.name, ctx)),
        b_(ctx) {}

  std::unique_ptr<llvm::Module> run() {
    verify(k_);
    declare_tables();
    if (spir_) run_spir();
    else run_cpu();
    b_.CreateRetVoid();
    std::string errors;
    llvm::raw_string_ostream err(errors);
    MOAT_INTERNAL_CHECK(!llvm::verifyModule(*module_, &err), "kernel ", k_.name, ": emitted LLVM IR is invalid: ", err.str());
    return std::move(module_);
  }

 private:
  void run_cpu() {
    const int64_t items = k_.items[0] * k_.items[1] * k_.items[2];
    NeedsLockstep lockstep;
    lockstep.visit(*k_.body);
    MOAT_INTERNAL_CHECK(items == 1 || !lockstep.found, "kernel ", k_.name,
                        ": barriers / sub-group operations with several work-items per group cannot run on the cpu target");

    llvm::Type* i64 = b_.getInt64Ty();
    llvm::Type* i64p = llvm::PointerType::getUnqual(i64);
    auto* fn_type = llvm::FunctionType::get(b_.getVoidTy(), {i64p, i64p, i64, i64}, false);
    fn_ = llvm::Function::Create(fn_type, llvm::Function::ExternalLinkage, k_.name, *module_);
    fn_->addFnAttr(llvm::Attribute::NoUnwind);
    fn_->addFnAttr(llvm::Attribute::NoFree);
    auto arg = fn_->arg_begin();
    Value* args = &*arg++;
    Value* grid = &*arg++;
    Value* group_begin = &*arg++;
    Value* group_end = &*arg++;
    args->setName("args");
    grid->setName("grid");
    fn_->addParamAttr(0, llvm::Attribute::NoAlias);
    fn_->addParamAttr(1, llvm::Attribute::NoAlias);

    entry_ = llvm::BasicBlock::Create(ctx_, "entry", fn_);
    b_.SetInsertPoint(entry_);
    bind_params(args);
    for (int d = 0; d < 3; ++d) {
      grid_groups_[d] = b_.CreateLoad(i64, b_.CreateGEP(i64, grid, b_.getInt64(d)), "groups" + std::to_string(d));
      grid_items_[d] = b_.getInt64(k_.items[d]);
    }
    for (size_t i = 0; i < k_.buffers.size(); ++i) {
      const BufferDecl& buf = k_.buffers[i];
      if (buf.space != Space::local) continue;
      llvm::Type* et = le::scalar_type(ctx_, storage_scalar(buf.dtype));
      llvm::AllocaInst* mem = b_.CreateAlloca(llvm::ArrayType::get(et, static_cast<uint64_t>(buf.elements)), nullptr, buf.name);
      mem->setAlignment(llvm::Align(64));  // whole cache lines: vector loads never straddle two
      buffer_ptr_[static_cast<int>(i)] = b_.CreateBitCast(mem, llvm::PointerType::getUnqual(et));
    }

    // for g in [begin, end): group ids from the linear id; then every work-item.
    loop(group_begin, group_end, b_.getInt64(1), "g", [&](Value* g) {
      Value* gx = grid_groups_[0];
      Value* gy = grid_groups_[1];
      group_id_[0] = b_.CreateURem(g, gx, "gid0");
      group_id_[1] = b_.CreateURem(b_.CreateUDiv(g, gx), gy, "gid1");
      group_id_[2] = b_.CreateUDiv(g, b_.CreateMul(gx, gy), "gid2");
      if (items == 1) {
        for (int d = 0; d < 3; ++d) item_id_[d] = b_.getInt64(0);
        stmt(*k_.body);
        return;
      }
      loop(b_.getInt64(0), grid_items_[2], b_.getInt64(1), "i2", [&](Value* i2) {
        item_id_[2] = i2;
        loop(b_.getInt64(0), grid_items_[1], b_.getInt64(1), "i1", [&](Value* i1) {
          item_id_[1] = i1;
          loop(b_.getInt64(0), grid_items_[0], b_.getInt64(1), "i0", [&](Value* i0) {
            item_id_[0] = i0;
            stmt(*k_.body);
          });
        });
      });
    });
  }

  // An OpenCL kernel: one invocation per work-item; ids and barriers are built-ins.
  void run_spir() {
    module_->setTargetTriple("spir64-unknown-unknown");
    module_->setDataLayout("e-i64:64-v16:16-v24:32-v32:32-v48:64-v96:128-v192:256-v256:256-v512:512-v1024:1024");
    std::vector<llvm::Type*> params;
    for (const Param& p : k_.params) {
      if (p.is_buffer) params.push_back(llvm::PointerType::get(le::scalar_type(ctx_, storage_scalar(k_.buffers[p.index].dtype)), 1));
      else params.push_back(k_.scalars[p.index].scalar == Scalar::f32 ? b_.getFloatTy() : b_.getInt64Ty());
    }
    fn_ = llvm::Function::Create(llvm::FunctionType::get(b_.getVoidTy(), params, false), llvm::Function::ExternalLinkage,
                                 k_.name, *module_);
    fn_->setCallingConv(llvm::CallingConv::SPIR_KERNEL);
    fn_->addFnAttr(llvm::Attribute::NoUnwind);
    add_opencl_metadata();
    entry_ = llvm::BasicBlock::Create(ctx_, "entry", fn_);
    b_.SetInsertPoint(entry_);
    auto arg = fn_->arg_begin();
    for (const Param& p : k_.params) {
      Value* v = &*arg++;
      if (p.is_buffer) {
        v->setName(k_.buffers[p.index].name);
        buffer_ptr_[p.index] = v;
      } else {
        v->setName(k_.scalars[p.index].name);
        scalar_[p.index] = v;
      }
    }
    for (size_t i = 0; i < k_.buffers.size(); ++i) {
      const BufferDecl& buf = k_.buffers[i];
      if (buf.space != Space::local) continue;
      llvm::Type* et = le::scalar_type(ctx_, storage_scalar(buf.dtype));
      auto* array = llvm::ArrayType::get(et, static_cast<uint64_t>(buf.elements));
      auto* global = new llvm::GlobalVariable(*module_, array, false, llvm::GlobalValue::InternalLinkage,
                                              llvm::UndefValue::get(array), k_.name + "." + buf.name, nullptr,
                                              llvm::GlobalValue::NotThreadLocal, 3);
      global->setAlignment(llvm::Align(16));
      buffer_ptr_[static_cast<int>(i)] = b_.CreateConstInBoundsGEP2_32(array, global, 0, 0);
    }
    for (int d = 0; d < 3; ++d) {
      group_id_[d] = builtin_call("_Z12get_group_idj", d);
      item_id_[d] = builtin_call("_Z12get_local_idj", d);
      grid_groups_[d] = builtin_call("_Z14get_num_groupsj", d);
      grid_items_[d] = builtin_call("_Z14get_local_sizej", d);
    }
    stmt(*k_.body);
  }

  // Each constant table: an internal constant global array (spir: in the constant
  // address space, 2).
  void declare_tables() {
    for (const TableDecl& t : k_.tables) {
      llvm::Type* et = le::scalar_type(ctx_, t.scalar);
      std::vector<llvm::Constant*> values;
      for (int64_t v : t.values) values.push_back(llvm::ConstantInt::get(et, static_cast<uint64_t>(v), true));
      auto* array = llvm::ArrayType::get(et, values.size());
      auto* global = new llvm::GlobalVariable(*module_, array, true, llvm::GlobalValue::InternalLinkage,
                                              llvm::ConstantArray::get(array, values), k_.name + "." + t.name, nullptr,
                                              llvm::GlobalValue::NotThreadLocal, spir_ ? 2 : 0);
      global->setAlignment(llvm::Align(16));
      global->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
      tables_.push_back(global);
    }
  }

  // kir.h's table_load: a scalar, consecutive elements (one vector load), or a gather
  // (a load per lane; from a table of at most 16 bytes, one pshufb per 16 lanes where the
  // CPU has it: a codebook lookup).
  Value* table_load(const Node& n) {
    llvm::GlobalVariable* table = tables_.at(static_cast<size_t>(n.i));
    if (Value* shuffled = byte_table_gather(n)) return shuffled;
    llvm::Type* et = le::scalar_type(ctx_, n.type.scalar);
    const llvm::Align align(static_cast<uint64_t>(std::max(1, scalar_bits(n.type.scalar) / 8)));
    auto element = [&](Value* i) { return b_.CreateInBoundsGEP(table->getValueType(), table, {b_.getInt64(0), i}); };
    Value* index = expr(*n.args[0]);
    if (n.type.lanes == 1) return b_.CreateAlignedLoad(et, element(index), align);
    llvm::Type* vt = le::value_type(ctx_, n.type);
    if (n.args[0]->type.lanes == 1) {
      Value* p = b_.CreateBitCast(element(index), llvm::PointerType::get(vt, table->getAddressSpace()));
      return b_.CreateAlignedLoad(vt, p, align);
    }
    Value* out = llvm::UndefValue::get(vt);
    for (int l = 0; l < n.type.lanes; ++l) {
      Value* at = b_.CreateExtractElement(index, static_cast<uint64_t>(l));
      out = b_.CreateInsertElement(out, b_.CreateAlignedLoad(et, element(at), align), static_cast<uint64_t>(l));
    }
    return out;
  }

  // table_load's gather from a table of at most 16 bytes, 16 lanes per pshufb, where the
  // CPU has it; nullptr otherwise (the load per lane).
  Value* byte_table_gather(const Node& n) {
    const int lanes = n.type.lanes;
    if (spir_ || !cpu_.pshufb || n.args[0]->type.lanes == 1 || (lanes != 16 && lanes != 32 && lanes != 64)) return nullptr;
    const TableDecl& t = k_.tables.at(static_cast<size_t>(n.i));
    if (scalar_bits(t.scalar) != 8 || t.values.size() > 16) return nullptr;
    return le::byte_lookup(b_, t.values, expr(*n.args[0]));
  }

  // size_t f(uint dim), an OpenCL work-item function.
  Value* builtin_call(const char* mangled, int dim) {
    llvm::FunctionCallee fn = module_->getOrInsertFunction(mangled, b_.getInt64Ty(), b_.getInt32Ty());
    llvm::CallInst* call = b_.CreateCall(fn, {b_.getInt32(static_cast<uint32_t>(dim))});
    call->setCallingConv(llvm::CallingConv::SPIR_FUNC);
    return call;
  }

  // A float OpenCL built-in (mangled name) of `args`.
  Value* opencl_call(const char* mangled, std::vector<Value*> args) {
    std::vector<llvm::Type*> types(args.size(), b_.getFloatTy());
    llvm::FunctionCallee fn = module_->getOrInsertFunction(mangled, llvm::FunctionType::get(b_.getFloatTy(), types, false));
    if (auto* f = llvm::dyn_cast<llvm::Function>(fn.getCallee())) {
      f->setCallingConv(llvm::CallingConv::SPIR_FUNC);
      f->addFnAttr(llvm::Attribute::ReadNone);
      f->addFnAttr(llvm::Attribute::NoUnwind);
    }
    llvm::CallInst* call = b_.CreateCall(fn, args);
    call->setCallingConv(llvm::CallingConv::SPIR_FUNC);
    return call;
  }

  // The kernel-argument metadata and SPIR version markers OpenCL consumers expect.
  void add_opencl_metadata() {
    std::vector<llvm::Metadata*> space, access, type, base, qual;
    for (const Param& p : k_.params) {
      std::string t;
      if (p.is_buffer) {
        switch (storage_scalar(k_.buffers[p.index].dtype)) {
          case Scalar::f32: t = "float*"; break;
          case Scalar::i64: t = "long*"; break;
          case Scalar::i32: t = "int*"; break;
          case Scalar::i8: t = "char*"; break;
          case Scalar::f16: case Scalar::bf16: t = "ushort*"; break;
          default: t = "uchar*"; break;
        }
      } else {
        t = k_.scalars[p.index].scalar == Scalar::f32 ? "float" : "long";
      }
      space.push_back(llvm::ConstantAsMetadata::get(b_.getInt32(p.is_buffer ? 1 : 0)));
      access.push_back(llvm::MDString::get(ctx_, "none"));
      type.push_back(llvm::MDString::get(ctx_, t));
      base.push_back(llvm::MDString::get(ctx_, t));
      qual.push_back(llvm::MDString::get(ctx_, ""));
    }
    fn_->setMetadata("kernel_arg_addr_space", llvm::MDNode::get(ctx_, space));
    fn_->setMetadata("kernel_arg_access_qual", llvm::MDNode::get(ctx_, access));
    fn_->setMetadata("kernel_arg_type", llvm::MDNode::get(ctx_, type));
    fn_->setMetadata("kernel_arg_base_type", llvm::MDNode::get(ctx_, base));
    fn_->setMetadata("kernel_arg_type_qual", llvm::MDNode::get(ctx_, qual));
    auto version = [&](const char* name) {
      llvm::NamedMDNode* md = module_->getOrInsertNamedMetadata(name);
      if (md->getNumOperands() == 0)
        md->addOperand(llvm::MDNode::get(ctx_, {llvm::ConstantAsMetadata::get(b_.getInt32(1)),
                                                llvm::ConstantAsMetadata::get(b_.getInt32(2))}));
    };
    version("opencl.spir.version");
    version("opencl.ocl.version");
  }

  void bind_params(Value* args) {
    llvm::Type* i64 = b_.getInt64Ty();
    for (size_t p = 0; p < k_.params.size(); ++p) {
      const Param& param = k_.params[p];
      Value* slot = b_.CreateLoad(i64, b_.CreateGEP(i64, args, b_.getInt64(static_cast<int64_t>(p))));
      if (param.is_buffer) {
        const BufferDecl& buf = k_.buffers[param.index];
        llvm::Type* et = le::scalar_type(ctx_, storage_scalar(buf.dtype));
        buffer_ptr_[param.index] = b_.CreateIntToPtr(slot, llvm::PointerType::getUnqual(et), buf.name);
      } else if (k_.scalars[param.index].scalar == Scalar::f32) {
        scalar_[param.index] = b_.CreateBitCast(b_.CreateTrunc(slot, b_.getInt32Ty()), b_.getFloatTy(), k_.scalars[param.index].name);
      } else {
        scalar_[param.index] = slot;
      }
    }
  }

  // A counted loop; `body` emits the loop body given the induction variable.
  template <class Body>
  void loop(Value* begin, Value* end, Value* step, const std::string& name, Body&& body) {
    llvm::BasicBlock* pre = b_.GetInsertBlock();
    auto* header = llvm::BasicBlock::Create(ctx_, name + ".head", fn_);
    auto* inner = llvm::BasicBlock::Create(ctx_, name + ".body", fn_);
    auto* exit = llvm::BasicBlock::Create(ctx_, name + ".exit", fn_);
    b_.CreateBr(header);
    b_.SetInsertPoint(header);
    llvm::PHINode* iv = b_.CreatePHI(b_.getInt64Ty(), 2, name);
    iv->addIncoming(begin, pre);
    b_.CreateCondBr(b_.CreateICmpSLT(iv, end), inner, exit);
    b_.SetInsertPoint(inner);
    cache_.emplace_back();
    body(static_cast<Value*>(iv));
    cache_.pop_back();
    Value* next = b_.CreateAdd(iv, step, name + ".next", /*HasNUW=*/false, /*HasNSW=*/true);
    iv->addIncoming(next, b_.GetInsertBlock());
    b_.CreateBr(header);
    b_.SetInsertPoint(exit);
  }

  llvm::AllocaInst* entry_alloca(llvm::Type* t, const std::string& name) {
    llvm::IRBuilder<> at(entry_, entry_->begin());
    return at.CreateAlloca(t, nullptr, name);
  }

  void stmts(const std::vector<NodeRef>& list) {
    cache_.emplace_back();
    scopes_.emplace_back();
    for (size_t i = 0; i < list.size();) {
      size_t end = i;
      while (end < list.size() && stores_joint_reduction(*list[end])) ++end;
      if (end > i + 1) {
        joint_reductions(std::span(list).subspan(i, end - i));
        i = end;
      } else {
        stmt(*list[i++]);
      }
    }
    for (const std::string& name : scopes_.back()) names_.erase(name);
    scopes_.pop_back();
    cache_.pop_back();
  }

  // A reduction of a named vector (a tile's accumulator) whose lanes are a power of two:
  // one that may be computed together with others of its kind (joint_horizontal).
  static bool joinable(const Node& n) {
    return n.kind == NodeKind::reduce && n.args[0]->kind == NodeKind::ref && n.args[0]->type.lanes >= 2 &&
           std::has_single_bit(static_cast<unsigned>(n.args[0]->type.lanes));
  }
  static void joinable_in(const NodeRef& e, std::vector<const Node*>& found) {
    if (joinable(*e)) found.push_back(e.get());
    else for (const NodeRef& a : e->args) joinable_in(a, found);
  }
  static bool stores_joint_reduction(const Node& n) {
    std::vector<const Node*> found;
    if (n.kind == NodeKind::store) joinable_in(n.args[1], found);
    return !found.empty();
  }

  // Consecutive stores of reductions of named vectors: the reductions of one operation
  // and type are computed together first (named values do not change between stores),
  // then the stores run as written.
  void joint_reductions(std::span<const NodeRef> run) {
    std::map<std::pair<uint8_t, std::string>, std::vector<const Node*>> kinds;
    for (const NodeRef& s : run) {
      std::vector<const Node*> found;
      joinable_in(s->args[1], found);
      for (const Node* r : found) {
        std::vector<const Node*>& same = kinds[{r->op, type_name(r->args[0]->type)}];
        if (std::find(same.begin(), same.end(), r) == same.end()) same.push_back(r);
      }
    }
    for (const auto& [kind, reductions] : kinds) {
      if (reductions.size() < 2) continue;
      std::vector<Value*> vectors;
      for (const Node* r : reductions) vectors.push_back(expr(*r->args[0]));
      const Type t = reductions[0]->args[0]->type;
      const auto op = static_cast<ReduceOp>(kind.first);
      const std::vector<Value*> sums =
          le::joint_horizontal(b_, vectors, t.lanes, [&](Value* a, Value* c) { return combine(op, a, c, t); });
      for (size_t i = 0; i < reductions.size(); ++i) joint_[reductions[i]] = sums[i];
    }
    for (const NodeRef& s : run) stmt(*s);
    joint_.clear();
  }

  void bind(const std::string& name, Value* v, bool is_var) {
    names_[name] = {v, is_var};
    scopes_.back().push_back(name);
  }

  // A load from kernel buffer `buffer`. A global buffer the kernel never writes holds the
  // same values for the whole launch (a kernel's inputs are not its outputs: plan buffers
  // live at once never overlap, and an in-place update is one written buffer), so its
  // loads are !invariant.load on the CPU: LLVM hoists them out of loops that store
  // elsewhere (an expert's weight out of the loop over a row) and vectorises those loops.
  Value* buffer_load(int buffer, llvm::Type* type, Value* p, llvm::Align align) {
    llvm::LoadInst* load = b_.CreateAlignedLoad(type, p, align);
    const BufferDecl& decl = k_.buffers[static_cast<size_t>(buffer)];
    if (!spir_ && decl.space == Space::global && !decl.written)
      load->setMetadata(llvm::LLVMContext::MD_invariant_load, llvm::MDNode::get(ctx_, {}));
    return load;
  }

  void stmt(const Node& n) {
    switch (n.kind) {
      case NodeKind::block: stmts(n.body); return;
      case NodeKind::let: bind(n.name, expr(*n.args[0]), false); return;
      case NodeKind::load_vector: {  // aligned to its size (kir.h)
        Value* p = element_ptr(static_cast<int>(n.i), expr(*n.args[0]), n.type);
        Value* v = buffer_load(static_cast<int>(n.i), le::value_type(ctx_, n.type), p, llvm::Align(static_cast<uint64_t>(4 * n.type.lanes)));
        for (int l = 0; l < n.type.lanes; ++l) bind(lane_name(n.name, l), b_.CreateExtractElement(v, static_cast<uint64_t>(l)), false);
        return;
      }
      case NodeKind::var: {
        llvm::AllocaInst* slot = entry_alloca(le::value_type(ctx_, n.type), n.name);
        b_.CreateStore(expr(*n.args[0]), slot);
        bind(n.name, slot, true);
        return;
      }
      case NodeKind::assign: b_.CreateStore(expr(*n.args[0]), names_.at(n.name).value); return;
      case NodeKind::store: {
        Value* value = expr(*n.args[1]);
        Value* p = element_ptr(static_cast<int>(n.i), expr(*n.args[0]), n.args[1]->type);
        b_.CreateAlignedStore(value, p, element_align(static_cast<int>(n.i)));
        return;
      }
      case NodeKind::for_loop:
        loop(expr(*n.args[0]), expr(*n.args[1]), expr(*n.args[2]), n.name, [&](Value* iv) {
          scopes_.emplace_back();
          bind(n.name, iv, false);
          stmts(n.body);
          names_.erase(n.name);
          scopes_.pop_back();
        });
        return;
      case NodeKind::if_then: {
        Value* cond = expr(*n.args[0]);
        auto* then_bb = llvm::BasicBlock::Create(ctx_, "then", fn_);
        auto* else_bb = llvm::BasicBlock::Create(ctx_, "else", fn_);
        auto* join = llvm::BasicBlock::Create(ctx_, "join", fn_);
        b_.CreateCondBr(cond, then_bb, else_bb);
        b_.SetInsertPoint(then_bb);
        stmts(n.body);
        b_.CreateBr(join);
        b_.SetInsertPoint(else_bb);
        stmts(n.else_body);
        b_.CreateBr(join);
        b_.SetInsertPoint(join);
        return;
      }
      case NodeKind::barrier: {
        if (!spir_) return;  // cpu: one work-item per group (checked in run_cpu)
        llvm::FunctionCallee fn = module_->getOrInsertFunction("_Z7barrierj", b_.getVoidTy(), b_.getInt32Ty());
        if (auto* f = llvm::dyn_cast<llvm::Function>(fn.getCallee())) {
          f->setCallingConv(llvm::CallingConv::SPIR_FUNC);
          f->addFnAttr(llvm::Attribute::Convergent);
        }
        llvm::CallInst* call = b_.CreateCall(fn, {b_.getInt32(1)});  // CLK_LOCAL_MEM_FENCE
        call->setCallingConv(llvm::CallingConv::SPIR_FUNC);
        return;
      }
      default: break;
    }
    MOAT_INTERNAL_ERROR("llvm emitter: ", node_kind_name(n.kind), " is not a statement (kernel ", k_.name, ")");
  }

  llvm::Align element_align(int buffer) const {
    return llvm::Align(static_cast<uint64_t>(std::max(1, scalar_bits(storage_scalar(k_.buffers[buffer].dtype)) / 8)));
  }

  // Address of element `index` of `buffer`, typed for a value of type t (a vector
  // type for a vector access).
  Value* element_ptr(int buffer, Value* index, Type t) {
    llvm::Type* et = le::scalar_type(ctx_, t.scalar);
    Value* base = buffer_ptr_.at(buffer);
    const unsigned space = base->getType()->getPointerAddressSpace();
    if (t.scalar != storage_scalar(k_.buffers[buffer].dtype))  // a quantised buffer's bytes read as i8 / f16 (kir.h)
      base = b_.CreateBitCast(base, llvm::PointerType::get(et, space));
    Value* p = b_.CreateGEP(et, base, index);
    if (t.lanes == 1) return p;
    return b_.CreateBitCast(p, llvm::PointerType::get(le::value_type(ctx_, t), space));
  }

  // Whether a node's value can be reused wherever it is in scope (kir_reuse.h).
  bool pure(const Node& n) {
    return reuse_.reusable(n, [&](const std::string& name) {
      auto named = names_.find(name);
      return named != names_.end() && !named->second.is_var;
    });
  }

  Value* expr(const Node& n) {
    const bool reusable = pure(n);
    if (reusable) {
      for (auto s = cache_.rbegin(); s != cache_.rend(); ++s) {
        auto it = s->find(&n);
        if (it != s->end()) return it->second;
      }
    }
    Value* v = compute(n);
    if (reusable && !cache_.empty()) cache_.back()[&n] = v;
    return v;
  }

  Value* compute(const Node& n) {
    const Type t = n.type;
    switch (n.kind) {
      case NodeKind::constant: {
        llvm::Type* st = le::scalar_type(ctx_, t.scalar);
        Value* c = nullptr;
        if (t.scalar == Scalar::f32) c = llvm::ConstantFP::get(st, static_cast<double>(static_cast<float>(n.f)));
        else if (t.scalar == Scalar::f64) c = llvm::ConstantFP::get(st, n.f);
        else if (is_float(t.scalar)) c = le::convert(b_, llvm::ConstantFP::get(b_.getFloatTy(), n.f), kF32, {t.scalar, 1});
        else c = llvm::ConstantInt::get(st, static_cast<uint64_t>(n.i), is_signed(t.scalar));
        return c;
      }
      case NodeKind::scalar_arg: return scalar_.at(static_cast<int>(n.i));
      case NodeKind::ref: {
        const Named& named = names_.at(n.name);
        if (!named.is_var) return named.value;
        return b_.CreateLoad(le::value_type(ctx_, t), named.value, n.name);
      }
      case NodeKind::builtin:
        switch (static_cast<Builtin>(n.op)) {
          case Builtin::group_id: return group_id_[n.i];
          case Builtin::item_id: return item_id_[n.i];
          case Builtin::num_groups: return grid_groups_[n.i];
          case Builtin::group_size: return grid_items_[n.i];
        }
        break;
      case NodeKind::unary: return unary(n);
      case NodeKind::binary:
        return le::binary_op(b_, static_cast<BinaryOp>(n.op), expr(*n.args[0]), expr(*n.args[1]), n.args[0]->type);
      case NodeKind::fma:
        if (spir_) return opencl_call("_Z3fmafff", {expr(*n.args[0]), expr(*n.args[1]), expr(*n.args[2])});
        // f64 (the math rules): fused, as kir.h requires; f32: fused where it is fast
        return b_.CreateIntrinsic(t.scalar == Scalar::f64 ? llvm::Intrinsic::fma : llvm::Intrinsic::fmuladd, {le::value_type(ctx_, t)},
                                  {expr(*n.args[0]), expr(*n.args[1]), expr(*n.args[2])});
      case NodeKind::select: {
        Value* c = expr(*n.args[0]);
        if (n.args[0]->type.lanes == 1 && t.lanes > 1) c = b_.CreateVectorSplat(static_cast<unsigned>(t.lanes), c);
        return b_.CreateSelect(c, expr(*n.args[1]), expr(*n.args[2]));
      }
      case NodeKind::cast: return le::convert(b_, expr(*n.args[0]), n.args[0]->type, t);
      case NodeKind::bitcast: return le::reinterpret(b_, expr(*n.args[0]), n.args[0]->type, t);
      case NodeKind::broadcast: return b_.CreateVectorSplat(static_cast<unsigned>(t.lanes), expr(*n.args[0]));
      case NodeKind::extract: return b_.CreateExtractElement(expr(*n.args[0]), expr(*n.args[1]));
      case NodeKind::concat: {  // equal widths (kir.cpp)
        auto as_vector = [&](Value* v) -> Value* {
          if (v->getType()->isVectorTy()) return v;
          return b_.CreateInsertElement(llvm::UndefValue::get(llvm::FixedVectorType::get(v->getType(), 1)), v, b_.getInt64(0));
        };
        std::vector<int> lanes(static_cast<size_t>(t.lanes));
        for (int i = 0; i < t.lanes; ++i) lanes[static_cast<size_t>(i)] = i;
        return b_.CreateShuffleVector(as_vector(expr(*n.args[0])), as_vector(expr(*n.args[1])), lanes);
      }
      case NodeKind::reduce:
        if (auto joint = joint_.find(&n); joint != joint_.end()) return joint->second;
        return horizontal(static_cast<ReduceOp>(n.op), expr(*n.args[0]), n.args[0]->type);
      case NodeKind::subgroup_reduce: {
        if (!spir_) return expr(*n.args[0]);  // sub-groups of one work-item on the CPU
        MOAT_INTERNAL_CHECK(n.i == 0, "llvm emitter: clustered sub-group reduction for spir (kernel ", k_.name, ")");
        const auto op = static_cast<ReduceOp>(n.op);
        return opencl_call(op == ReduceOp::add   ? "_Z20sub_group_reduce_addf"
                           : op == ReduceOp::max ? "_Z20sub_group_reduce_maxf"
                                                 : "_Z20sub_group_reduce_minf",
                           {expr(*n.args[0])});
      }
      case NodeKind::load: {
        Value* p = element_ptr(static_cast<int>(n.i), expr(*n.args[0]), t);
        return buffer_load(static_cast<int>(n.i), le::value_type(ctx_, t), p, element_align(static_cast<int>(n.i)));
      }
      case NodeKind::table_load: return table_load(n);
      case NodeKind::dot4:
        return le::dot4(b_, expr(*n.args[0]), expr(*n.args[1]), expr(*n.args[2]), !spir_ && cpu_.avx512_vnni);
      default: break;
    }
    MOAT_INTERNAL_ERROR("llvm emitter: ", node_kind_name(n.kind), " is not an expression (kernel ", k_.name, ")");
  }

  Value* unary(const Node& n) {
    Value* x = expr(*n.args[0]);
    const Type t = n.args[0]->type;
    llvm::Type* vt = le::value_type(ctx_, t);
    auto f32 = [&](float v) -> Value* {
      Value* c = llvm::ConstantFP::get(b_.getFloatTy(), static_cast<double>(v));
      return t.lanes == 1 ? c : b_.CreateVectorSplat(static_cast<unsigned>(t.lanes), c);
    };
    // a float function: an LLVM intrinsic (cpu) or the OpenCL built-in (spir)
    auto fn = [&](llvm::Intrinsic::ID id, const char* opencl) -> Value* {
      if (spir_) return opencl_call(opencl, {x});
      return b_.CreateUnaryIntrinsic(id, x);
    };
    switch (static_cast<UnaryOp>(n.op)) {
      case UnaryOp::neg: return is_float(t.scalar) ? b_.CreateFNeg(x) : b_.CreateNeg(x);
      case UnaryOp::abs:
        if (is_float(t.scalar)) return fn(llvm::Intrinsic::fabs, "_Z4fabsf");
        return b_.CreateSelect(b_.CreateICmpSLT(x, llvm::Constant::getNullValue(vt)), b_.CreateNeg(x), x);
      case UnaryOp::exp: return fn(llvm::Intrinsic::exp, "_Z3expf");
      case UnaryOp::log: return fn(llvm::Intrinsic::log, "_Z3logf");
      case UnaryOp::sqrt: return fn(llvm::Intrinsic::sqrt, "_Z4sqrtf");
      case UnaryOp::rsqrt: return b_.CreateFDiv(f32(1.0f), fn(llvm::Intrinsic::sqrt, "_Z4sqrtf"));
      case UnaryOp::recip: return b_.CreateFDiv(f32(1.0f), x);
      case UnaryOp::sin: return fn(llvm::Intrinsic::sin, "_Z3sinf");
      case UnaryOp::cos: return fn(llvm::Intrinsic::cos, "_Z3cosf");
      case UnaryOp::tanh: return spir_ ? opencl_call("_Z4tanhf", {x}) : libm_lanes("tanhf", x, t);
      case UnaryOp::lnot: return b_.CreateNot(x);
      case UnaryOp::isnan: return b_.CreateFCmpUNO(x, x);
      case UnaryOp::rint: return fn(llvm::Intrinsic::rint, "_Z4rintf");
    }
    MOAT_INTERNAL_ERROR("llvm emitter: unknown unary op");
  }

  // A float function of libm applied to every lane.
  Value* libm_lanes(const char* name, Value* x, Type t) {
    llvm::FunctionCallee fn = module_->getOrInsertFunction(name, b_.getFloatTy(), b_.getFloatTy());
    if (t.lanes == 1) return b_.CreateCall(fn, {x});
    Value* out = llvm::UndefValue::get(x->getType());
    for (int l = 0; l < t.lanes; ++l)
      out = b_.CreateInsertElement(out, b_.CreateCall(fn, {b_.CreateExtractElement(x, static_cast<uint64_t>(l))}),
                                   static_cast<uint64_t>(l));
    return out;
  }

  // Horizontal reduction by halving (lane order within a vector is the schedule's).
  Value* horizontal(ReduceOp op, Value* v, Type t) {
    int lanes = t.lanes;
    while (lanes > 1) {
      const int half = lanes / 2;
      std::vector<int> lo(static_cast<size_t>(half)), hi(static_cast<size_t>(half));
      for (int i = 0; i < half; ++i) {
        lo[static_cast<size_t>(i)] = i;
        hi[static_cast<size_t>(i)] = i + half;
      }
      Value* a = b_.CreateShuffleVector(v, lo);
      Value* c = b_.CreateShuffleVector(v, hi);
      Value* r = combine(op, a, c, t);
      if (lanes % 2 == 1) {  // fold the odd last lane into lane 0
        Value* last = b_.CreateExtractElement(v, static_cast<uint64_t>(lanes - 1));
        Value* first = b_.CreateExtractElement(r, uint64_t{0});
        r = half == 1 ? combine(op, first, last, t.with_lanes(1))
                      : b_.CreateInsertElement(r, combine(op, first, last, t.with_lanes(1)), uint64_t{0});
      }
      v = r;
      lanes = half;
    }
    if (v->getType()->isVectorTy()) v = b_.CreateExtractElement(v, uint64_t{0});
    return v;
  }

  Value* combine(ReduceOp op, Value* a, Value* c, Type t) {
    switch (op) {
      case ReduceOp::add: return le::binary_op(b_, BinaryOp::add, a, c, t);
      case ReduceOp::max: return le::binary_op(b_, BinaryOp::max, a, c, t);
      case ReduceOp::min: return le::binary_op(b_, BinaryOp::min, a, c, t);
    }
    MOAT_INTERNAL_ERROR("llvm emitter: unknown reduction");
  }

  struct Named {
    Value* value = nullptr;  // the value, or the alloca of a var
    bool is_var = false;
  };

  const Kernel& k_;
  const bool spir_;
  const CpuFeatures cpu_;
  llvm::LLVMContext& ctx_;
  std::unique_ptr<llvm::Module> module_;
  llvm::IRBuilder<> b_;
  llvm::Function* fn_ = nullptr;
  llvm::BasicBlock* entry_ = nullptr;
  std::map<int, Value*> buffer_ptr_;
  std::map<int, Value*> scalar_;
  std::vector<llvm::GlobalVariable*> tables_;  // by table index
  Value* grid_groups_[3] = {};
  Value* grid_items_[3] = {};
  Value* group_id_[3] = {};
  Value* item_id_[3] = {};
  std::unordered_map<std::string, Named> names_;
  std::vector<std::vector<std::string>> scopes_;
  std::vector<std::unordered_map<const Node*, Value*>> cache_;
  std::unordered_map<const Node*, Value*> joint_;  // reductions computed together (joint_reductions)
  ReuseAnalysis reuse_;
};

}  // namespace

std::unique_ptr<llvm::Module> build_llvm_module(const Kernel& kernel, LlvmFlavour flavour, llvm::LLVMContext& ctx,
                                                const CpuFeatures& cpu) {
  // the least this printer needs (jit/target.cpp declares the same; a kernel the Target
  // legalised already passes unchanged)
  const Kernel legal = legalize_numerics(kernel, {.native_f16 = true});
  if (flavour == LlvmFlavour::spir && has_vectors(legal)) {
    const Kernel scalar = scalarize(legal);  // legalise: OpenCL built-ins are called per scalar
    return LlvmEmitter(scalar, flavour, ctx, {}).run();
  }
  return LlvmEmitter(legal, flavour, ctx, flavour == LlvmFlavour::cpu ? cpu : CpuFeatures{}).run();
}

std::string emit_llvm(const Kernel& kernel, const CpuFeatures& cpu) {
  llvm::LLVMContext ctx;
  std::unique_ptr<llvm::Module> module = build_llvm_module(kernel, LlvmFlavour::cpu, ctx, cpu);
  std::string text;
  llvm::raw_string_ostream out(text);
  module->print(out, nullptr);
  return out.str();
}

std::vector<uint8_t> emit_spir_bitcode(const Kernel& kernel) {
  llvm::LLVMContext ctx;
  std::unique_ptr<llvm::Module> module = build_llvm_module(kernel, LlvmFlavour::spir, ctx);
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream out(buffer);
  llvm::WriteBitcodeToFile(*module, out);
  return {buffer.begin(), buffer.end()};
}

}  // namespace moat::jit
